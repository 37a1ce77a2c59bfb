/**
 * Which slice statements the service signs, and how often a client may make it sign a new one.
 * Signed slice public keys are public and unauthenticated, so (v2):
 *  - the active version is signed only for slices near now: from 24 h back to 1 h ahead (and at
 *    least the two slices either side of the current one, for long slices); a decrypt-only version
 *    only for slices that have ended, within the same 24 h (data sources encrypt only to the active
 *    version, so a statement of an older one is never needed for new data);
 *  - each statement carries `iat` and `exp` (`SLICE_STATEMENT_TTL_MS`), and a cached statement is
 *    served while at least half its lifetime is left, so a client always gets ≥ 30 min of validity;
 *  - the statements around now are signed ahead of time (`WARM_SLICES`), so ordinary lookups are
 *    cache hits; a lookup that has to sign counts against a per-address budget (`UncachedLookupLimiter`).
 */
import { SLICE_STATEMENT_TTL_MS, sliceIndex, MAX_SLICE } from "../crypto/index.ts";
import { RateLimitedError } from "../errors.ts";

export const STATEMENT_PAST_MS = 24 * 60 * 60 * 1000;
export const STATEMENT_FUTURE_MS = 60 * 60 * 1000;
/** Slices either side of the current one that are always inside the window. */
export const STATEMENT_MIN_SLICES = 2;
/** Slices of the active version signed ahead of time: the current one, one before, two after. */
export const WARM_SLICES = { before: 1, after: 2 } as const;
/** Uncached (freshly signed) statements per client address: a bucket of 60, refilled at 1 per second. */
export const UNCACHED_LOOKUPS_BURST = 60;
export const UNCACHED_LOOKUPS_PER_SECOND = 1;
const MAX_TRACKED_ADDRESSES = 10_000;

/** The inclusive range of slices of one version the service will sign at `now`, or null for none. */
export function statementWindow(status: "active" | "decrypt-only", sliceSeconds: number, now: number): { from: number; to: number } | null {
  const cur = sliceIndex(now, sliceSeconds);
  const from = Math.max(0, Math.min(sliceIndex(Math.max(0, now - STATEMENT_PAST_MS), sliceSeconds), cur - STATEMENT_MIN_SLICES));
  let to: number;
  if (status === "active") {
    let ahead: number;
    try {
      ahead = sliceIndex(now + STATEMENT_FUTURE_MS, sliceSeconds);
    } catch {
      ahead = MAX_SLICE;
    }
    to = Math.min(MAX_SLICE, Math.max(ahead, cur + STATEMENT_MIN_SLICES));
  } else {
    to = cur - 1; // past slices only
  }
  return to >= from ? { from, to } : null;
}

/** Whether a cached statement issued at `iat` may still be handed out at `now`. */
export function stillFresh(iat: number, now: number): boolean {
  return now - iat < SLICE_STATEMENT_TTL_MS / 2;
}

/**
 * Token bucket per client address, O(1) per call; the least recently seen address is dropped when
 * MAX_TRACKED_ADDRESSES are tracked (Map order). Per process, like the auth-failure limit.
 */
export class UncachedLookupLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly now: () => number,
    private readonly burst = UNCACHED_LOOKUPS_BURST,
    private readonly perSecond = UNCACHED_LOOKUPS_PER_SECOND,
  ) {}

  /** Takes one token for `address` or throws RateLimitedError (→ 429 + Retry-After). */
  take(address: string): void {
    const now = this.now();
    let b = this.buckets.get(address);
    if (b) {
      this.buckets.delete(address);
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
      b.at = now;
    } else {
      if (this.buckets.size >= MAX_TRACKED_ADDRESSES) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.burst, at: now };
    }
    this.buckets.set(address, b);
    if (b.tokens < 1) {
      const wait = Math.max(1, Math.ceil((1 - b.tokens) / this.perSecond));
      throw new RateLimitedError(`too many lookups of slice keys that are not signed yet; retry in ${wait} s (slices near now are always served)`, wait);
    }
    b.tokens -= 1;
  }
}
