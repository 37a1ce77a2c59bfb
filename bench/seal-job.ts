/** What the bench seeds: user ids, plaintext token values, and the sealed rows. */

export const benchUserId = (i: number) => `user-${i}`;
export const benchAccessToken = (i: number) => `ya29.a0Af${i.toString(36)}${"x".repeat(150)}`;
export const benchRefreshToken = (i: number) => `1//0g${i.toString(36)}${"r".repeat(90)}`;

export interface SealedRow {
  userId: string;
  accessToken: string;
  refreshToken: string;
  keyVersion: number;
}
