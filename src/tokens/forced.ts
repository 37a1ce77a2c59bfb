/**
 * The forced-refresh claim: at most one forced upstream refresh per token per
 * FORCED_REFRESH_INTERVAL_MS, across processes. The claim is the row's `forcedRefreshAt`, taken
 * with one conditional UPDATE on the DATABASE clock (`now()`, so processes with skewed clocks agree)
 * and only while holding the token's refresh lock, after the row was re-read (src/tokens/refresh.ts);
 * a refresh that then fails gives the claim back.
 */
import type { Database } from "../db/database.ts";

export const FORCED_REFRESH_INTERVAL_MS = 30_000;

/** True when no forced refresh of this token was claimed within the interval; the claim is now ours. */
export async function claimForcedRefresh(db: Database, id: string): Promise<boolean> {
  const claimed = await db.prisma.$executeRaw`
    UPDATE oauth_tokens SET "forcedRefreshAt" = now()
     WHERE id = ${id}::uuid
       AND ("forcedRefreshAt" IS NULL OR "forcedRefreshAt" <= now() - make_interval(secs => ${FORCED_REFRESH_INTERVAL_MS / 1000}))`;
  return claimed === 1;
}

/** Gives a claim back after the refresh it was taken for failed (called under the same lock). */
export async function releaseForcedRefresh(db: Database, id: string): Promise<void> {
  await db.prisma.$executeRaw`UPDATE oauth_tokens SET "forcedRefreshAt" = NULL WHERE id = ${id}::uuid`;
}
