/**
 * The forced-refresh claim: at most one forced upstream refresh per token per
 * FORCED_REFRESH_INTERVAL_MS, across processes. The claim is the row's `forcedRefreshAt`, taken
 * with one conditional UPDATE on the DATABASE clock (`now()`, so processes with skewed clocks agree)
 * and only while holding the token's refresh lock, after the row was re-read (src/tokens/refresh.ts);
 * a refresh that then fails gives the claim back.
 */
import type { Database } from "../db/database.ts";
import type { TokenRow } from "./record.ts";
import { tokenRepository } from "./repository.ts";

export const FORCED_REFRESH_INTERVAL_MS = 30_000;

/** True when no forced refresh of this token was claimed within the interval; the claim is now ours. */
export function claimForcedRefresh(db: Database, row: TokenRow): Promise<boolean> {
  return tokenRepository(db).claimForced(row, FORCED_REFRESH_INTERVAL_MS / 1000);
}

/** Gives a claim back after the refresh it was taken for failed (called under the same lock). */
export function releaseForcedRefresh(db: Database, row: TokenRow): Promise<void> {
  return tokenRepository(db).releaseForced(row);
}
