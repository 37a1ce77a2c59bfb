/** What the bench seeds: user ids, plaintext token values, and the job a seal worker receives. */
import type { EcPublicJwk } from "../src/crypto/index.ts";

export const benchUserId = (i: number) => `user-${i}`;
export const benchAccessToken = (i: number) => `ya29.a0Af${i.toString(36)}${"x".repeat(150)}`;
export const benchRefreshToken = (i: number) => `1//0g${i.toString(36)}${"r".repeat(90)}`;

export interface SealJob {
  integration: string;
  from: number;
  count: number;
  ts: number;
  version: number;
  sliceSeconds: number;
  kid: string;
  publicJwk: EcPublicJwk;
}

export interface SealedRow {
  userId: string;
  accessToken: string;
  refreshToken: string;
  keyVersion: number;
}
