/**
 * Which slice statements the service signs, and how often a client may make it sign a new one.
 * Signed slice public keys are public and unauthenticated, so (v2):
 *  - the active version is signed only for slices near now: from 24 h back to 1 h ahead (and at
 *    least the two slices either side of the current one, for long slices); a decrypt-only version
 *    only for slices that have ended, within the same 24 h and within its own active period
 *    [createdAt, rotatedAt] (data sources encrypt only to the active version, so a statement of an
 *    older one is never needed for new data);
 *  - each statement carries `iat` and `exp` (`SLICE_STATEMENT_TTL_MS`), and a cached statement is
 *    served while at least half its lifetime is left, so a client always gets ≥ 30 min of validity;
 *  - the statements around now are signed ahead of time (`WARM_SLICES`), so ordinary lookups are
 *    cache hits and kept apart from the LRU of other statements, so no sweep can evict them; a lookup
 *    that has to sign counts against a per-address budget and a global one (`UncachedLookupLimiter`).
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
/**
 * And over all addresses together (a sweep from many addresses): a bucket of 300, refilled at 50
 * per second (a signature costs well under a millisecond plus one slice public key derivation).
 */
export const UNCACHED_LOOKUPS_GLOBAL_BURST = 300;
export const UNCACHED_LOOKUPS_GLOBAL_PER_SECOND = 50;
const MAX_TRACKED_ADDRESSES = 10_000;
/** `Cache-Control: max-age` of a served statement (seconds): a cache may hand it out this long. */
export const STATEMENT_CACHE_MAX_AGE_S = 300;
/**
 * A version may be retired only this long after its rotation: until then an `active` statement of
 * it may still be valid (or cached), so a data source may still encrypt to it.
 */
export const RETIRE_GRACE_MS = SLICE_STATEMENT_TTL_MS + STATEMENT_CACHE_MAX_AGE_S * 1000;

/**
 * The inclusive range of slices of one version the service will sign at `now`, or null for none.
 * A decrypt-only version is signed only for ended slices of its own active period
 * [createdAt, rotatedAt] (`period`; without it, none): no data was encrypted to it elsewhere.
 */
export function statementWindow(
  status: "active" | "decrypt-only",
  sliceSeconds: number,
  now: number,
  period?: { createdAt: number; rotatedAt: number | null },
): { from: number; to: number } | null {
  const cur = sliceIndex(now, sliceSeconds);
  let from = Math.max(
    0,
    Math.min(sliceIndex(Math.max(0, now - STATEMENT_PAST_MS), sliceSeconds), cur - STATEMENT_MIN_SLICES),
  );
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
    if (!period || period.rotatedAt === null) return null;
    to = Math.min(cur - 1, sliceIndex(Math.max(0, period.rotatedAt), sliceSeconds)); // past slices of its active period only
    from = Math.max(from, sliceIndex(Math.max(0, Math.min(period.createdAt, period.rotatedAt)), sliceSeconds));
  }
  return to >= from ? { from, to } : null;
}

/** Whether a cached statement issued at `iat` may still be handed out at `now`. */
export function stillFresh(iat: number, now: number): boolean {
  return now - iat < SLICE_STATEMENT_TTL_MS / 2;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token bucket per client address plus one over all addresses, O(1) per call; the least recently
 * seen address is dropped when MAX_TRACKED_ADDRESSES are tracked (Map order). Per process, like the
 * auth-failure limit.
 */
export class UncachedLookupLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly global: Bucket;

  constructor(
    private readonly now: () => number,
    private readonly burst = UNCACHED_LOOKUPS_BURST,
    private readonly perSecond = UNCACHED_LOOKUPS_PER_SECOND,
    private readonly globalBurst = UNCACHED_LOOKUPS_GLOBAL_BURST,
    private readonly globalPerSecond = UNCACHED_LOOKUPS_GLOBAL_PER_SECOND,
  ) {
    this.global = { tokens: globalBurst, at: now() };
  }

  /** Takes one token for `address` (and one of the global bucket) or throws RateLimitedError (→ 429 + Retry-After). */
  take(address: string): void {
    const now = this.now();
    let b = this.buckets.get(address);
    if (b) {
      this.buckets.delete(address);
      refill(b, now, this.burst, this.perSecond);
    } else {
      if (this.buckets.size >= MAX_TRACKED_ADDRESSES) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.burst, at: now };
    }
    this.buckets.set(address, b);
    refill(this.global, now, this.globalBurst, this.globalPerSecond);
    if (b.tokens < 1) throw limited(Math.ceil((1 - b.tokens) / this.perSecond), "from this address");
    if (this.global.tokens < 1)
      throw limited(Math.ceil((1 - this.global.tokens) / this.globalPerSecond), "from all clients together");
    b.tokens -= 1;
    this.global.tokens -= 1;
  }
}

function refill(b: Bucket, now: number, burst: number, perSecond: number): void {
  b.tokens = Math.min(burst, b.tokens + (Math.max(0, now - b.at) / 1000) * perSecond);
  b.at = now;
}

function limited(seconds: number, who: string): RateLimitedError {
  const wait = Math.max(1, seconds);
  return new RateLimitedError(
    `too many lookups of slice keys that are not signed yet ${who}; retry in ${wait} s (slices near now are always served)`,
    wait,
  );
}
