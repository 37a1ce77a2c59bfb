/**
 * Removing long-expired token records (`bun run tokens:cleanup --older-than 30d`). "Long
 * expired" = the access token expired before the cutoff AND the record cannot be refreshed (no
 * refresh token, or the provider refused it): a record whose refresh token still works is a user
 * who simply has not been active, and deleting it would force them to authorise again.
 */
import type { AuditSink } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import type { Database } from "../db/database.ts";
import { ValidationError } from "../errors.ts";
import { tokenRepository } from "./repository.ts";

const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };
const BATCH = 1000;

/** `30d`, `12h`, `2w`, `90m` → milliseconds. */
export function parseAge(text: string): number {
  const m = /^(\d{1,6})([mhdw])$/.exec(text.trim());
  if (!m) throw new ValidationError(`--older-than must be a number followed by m, h, d or w (e.g. 30d), got "${text}"`);
  const ms = Number(m[1]) * UNITS[m[2]!]!;
  if (ms <= 0) throw new ValidationError("--older-than must be greater than zero");
  return ms;
}

export interface CleanupResult {
  cutoff: string;
  dryRun: boolean;
  /** Records matching (dry run) or deleted (real run). */
  count: number;
}

export async function cleanupExpiredTokens(
  deps: { db: Database; audit: AuditSink; clock: Clock },
  opts: {
    olderThanMs: number;
    dryRun: boolean;
    actor?: string /** After each batch: removed so far, of the total matching at the start. */;
    onProgress?: (done: number, total: number) => void;
  },
): Promise<CleanupResult> {
  const cutoff = new Date(deps.clock.now() - opts.olderThanMs);
  const repo = tokenRepository(deps.db);
  const total = await repo.countExpired(cutoff);
  if (opts.dryRun) return { cutoff: cutoff.toISOString(), dryRun: true, count: total };
  // Batches keep each statement's locks short on a large table; each batch is audited as it
  // commits, so an interrupted run leaves an exact record of what it removed.
  let count = 0;
  for (;;) {
    const deleted = await repo.deleteExpired(cutoff, BATCH);
    if (deleted.length === 0) break;
    count += deleted.length;
    const byIntegration: Record<string, number> = {};
    for (const integration of deleted) byIntegration[integration] = (byIntegration[integration] ?? 0) + 1;
    await deps.audit.record({
      eventType: "TOKEN_DELETED",
      actor: opts.actor ?? "system:tokens-cleanup",
      target: "tokens:expired",
      success: true,
      details: { reason: "cleanup", cutoff: cutoff.toISOString(), count: deleted.length, byIntegration },
    });
    opts.onProgress?.(count, Math.max(total, count));
    if (deleted.length < BATCH) break;
  }
  return { cutoff: cutoff.toISOString(), dryRun: false, count };
}
