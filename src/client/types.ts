/** Wire types of the chronokms API (SPEC §5, §7, §8), shared by the SDK's methods. */
import type { EcPrivateJwk, EcPublicJwk } from "../crypto/jwk.ts";

export type Instant = string | number;

export type Resource = { type: "timeslice" } | { type: "token"; integration: string; userId: string };

export interface AccessRequestInput {
  resource: Resource;
  timeRange: { start: Instant; end: Instant };
  purpose?: string;
}

export interface GrantSliceKey {
  slice: number;
  kid: string;
  privateJwk: EcPrivateJwk;
}

export interface GrantSeed {
  depth: number;
  index: number;
  /** base64url, 32 bytes */
  seed: string;
}

export interface Grant {
  id: string;
  granted: true;
  expiresAt: string;
  keyVersion: number;
  sliceSeconds: number;
  slices: { from: number; to: number };
  keys?: GrantSliceKey[];
  seeds?: GrantSeed[];
  /** Present instead of keys/seeds when the requester registered a public key: a JWE to it. */
  encrypted?: string;
}

export interface SlicePublicKey {
  version: number;
  slice: number;
  kid: string;
  sliceSeconds: number;
  from: string | number;
  to: string | number;
  publicJwk: EcPublicJwk;
  signature: string;
}

export interface TokenInput {
  accessToken: string;
  refreshToken?: string;
  expiresAt?: Instant;
  scope?: string;
  tokenType?: string;
}

export interface TokenRecord {
  integration: string;
  userId: string;
  accessToken: string;
  refreshToken?: string | null;
  expiresAt?: string | null;
  scope?: string | null;
  tokenType?: string | null;
  issuedAt: string;
  lastUsed: string | null;
  refreshed: boolean;
}

export interface Jwks {
  keys: EcPublicJwk[];
}
