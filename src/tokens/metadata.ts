/**
 * What a token record says about itself without its values: the metadata of status and list
 * answers, and whether the token is usable at an instant.
 */
import type { TokenRow } from "./record.ts";
import { refreshState, type RefreshState, type TokenRefresher } from "./refresh.ts";
import type { TokenKey } from "./repository.ts";

export type TokenStatus = "valid" | "expired" | "needs-reauth";

export interface TokenMetadata extends TokenKey {
  expiresAt: string | null;
  scope: string | null;
  tokenType: string | null;
  hasRefreshToken: boolean;
  refreshStatus: RefreshState;
  /** Typed reason of the last refresh failure (null when ok). */
  refreshReason: string | null;
  /** While degraded: no refresh attempt before this instant. */
  nextRefreshAt: string | null;
  status: TokenStatus;
  keyVersion: number;
  issuedAt: string;
  lastUsed: string | null;
  createdAt: string;
  updatedAt: string;
  ipAddress: string | null;
  userAgent: string | null;
}

export const iso = (d: Date | null) => (d === null ? null : d.toISOString());

export function isUnexpired(row: Pick<TokenRow, "expiresAt">, now: number): boolean {
  return row.expiresAt === null || row.expiresAt.getTime() > now;
}

export function metadataOf(row: TokenRow, now: number, refresher: Pick<TokenRefresher, "provider">): TokenMetadata {
  return {
    integration: row.integration,
    userId: row.userId,
    expiresAt: iso(row.expiresAt),
    scope: row.scope,
    tokenType: row.tokenType,
    hasRefreshToken: row.refreshToken !== null,
    refreshStatus: refreshState(row.refreshStatus),
    refreshReason: row.refreshReason,
    nextRefreshAt: iso(row.nextRefreshAt),
    status: statusOf(row, now, refresher),
    keyVersion: row.keyVersion,
    issuedAt: row.issuedAt.toISOString(),
    lastUsed: iso(row.lastUsed),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    ipAddress: row.ipAddress,
    userAgent: row.userAgent,
  };
}

/**
 * valid: usable now (no expiry, or not yet expired — a read may still refresh it early).
 * expired: past its expiry, but a read will refresh it. needs-reauth: the provider refused the
 * refresh token, or it is expired with no refresh token or no provider configured.
 */
function statusOf(row: TokenRow, now: number, refresher: Pick<TokenRefresher, "provider">): TokenStatus {
  if (row.refreshStatus === "needs-reauth") return "needs-reauth";
  if (isUnexpired(row, now)) return "valid";
  return row.refreshToken !== null && refresher.provider(row.integration) !== null ? "expired" : "needs-reauth";
}
