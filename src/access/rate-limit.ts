/**
 * Per-address limit on failed authentications (sliding window of one minute, in memory), so
 * guessing keys is slow and a flood of bad keys cannot turn into a flood of database work.
 * Per process: N processes behind a balancer allow up to N × the limit.
 */
import type { Clock } from "../clock.ts";

const WINDOW_MS = 60_000;
/** Addresses tracked at once; beyond it, the stalest are dropped (an attacker rotating addresses gains nothing a balancer would not give them). */
export const MAX_ADDRESSES = 100_000;

export class AuthFailureLimiter {
  // Failure times per address, oldest first, never more than `limit` kept.
  private readonly failures = new Map<string, number[]>();
  private readonly suppressed = new Map<string, number>();
  private lastFailureAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly limit: number,
    private readonly clock: Clock,
    private readonly maxAddresses = MAX_ADDRESSES,
  ) {}

  /** No failure within the window: every address may try now (the caller need not even know which one it is). */
  idle(): boolean {
    return this.lastFailureAt + WINDOW_MS <= this.clock.now();
  }

  /** Seconds until this address may try again, or 0 if it may try now. */
  retryAfter(address: string): number {
    const times = this.failures.get(address);
    if (!times || times.length < this.limit) return 0;
    const wait = times[0]! + WINDOW_MS - this.clock.now();
    if (wait <= 0) return 0;
    return Math.max(1, Math.ceil(wait / 1000));
  }

  recordFailure(address: string): void {
    const now = this.clock.now();
    this.lastFailureAt = Math.max(this.lastFailureAt, now);
    let times = this.failures.get(address);
    if (times) {
      this.failures.delete(address); // re-inserted below: Map order = least recently failing first
    } else {
      times = [];
      if (this.failures.size >= this.maxAddresses) this.evictOldest();
    }
    while (times.length > 0 && times[0]! + WINDOW_MS <= now) times.shift();
    times.push(now);
    if (times.length > this.limit) times.shift();
    this.failures.set(address, times);
  }

  /** Counts an AUTH_FAILED row not written because the address was limited. */
  suppress(address: string): void {
    this.suppressed.set(address, (this.suppressed.get(address) ?? 0) + 1);
    if (this.suppressed.size > this.maxAddresses) this.suppressed.delete(this.suppressed.keys().next().value as string);
  }

  /** How many rows were suppressed for this address since the last call (reported on the next row). */
  takeSuppressed(address: string): number {
    const n = this.suppressed.get(address) ?? 0;
    this.suppressed.delete(address);
    return n;
  }

  /**
   * O(1): the Map's first entry is the address whose last failure is oldest (every failure
   * re-inserts its address at the end), so it is the stalest one to forget, expired or not.
   * Scanning for expired entries instead cost a full pass over the map per new address at the cap.
   */
  private evictOldest(): void {
    const oldest = this.failures.keys().next();
    if (!oldest.done) this.failures.delete(oldest.value);
  }
}
