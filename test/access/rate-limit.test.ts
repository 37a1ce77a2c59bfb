/**
 * The auth-failure limiter at its cap of addresses. From the attacker's side: failures from ever
 * new addresses (a botnet, or IPv6) once the map is full; each used to cost a scan of the whole map.
 * Counted, not timed: the test counts the map entries the limiter visits per failure.
 */
import { expect, test } from "bun:test";
import { AuthFailureLimiter } from "../../src/access/rate-limit.ts";

/** A Map that counts how many entries were visited through any of its iterators. */
class CountingMap<K, V> extends Map<K, V> {
  visited = 0;
  private count<T>(it: MapIterator<T>): MapIterator<T> {
    const self = this;
    return (function* () {
      for (const x of it) {
        self.visited++;
        yield x;
      }
    })() as unknown as MapIterator<T>;
  }
  override entries() {
    return this.count(super.entries());
  }
  override keys() {
    return this.count(super.keys());
  }
  override values() {
    return this.count(super.values());
  }
  override [Symbol.iterator]() {
    return this.count(super.entries());
  }
  override forEach(cb: (v: V, k: K, m: Map<K, V>) => void) {
    for (const [k, v] of this.entries()) cb(v, k, this);
  }
}

test("a failure from a new address at the cap evicts in O(1): a constant number of entries visited, not the map", () => {
  let now = 1_000_000;
  const clock = { now: () => now };
  const cap = 100_000; // the default cap
  const limiter = new AuthFailureLimiter(3, clock);
  const map = new CountingMap<string, number[]>();
  (limiter as unknown as { failures: Map<string, number[]> }).failures = map;
  for (let i = 0; i < cap; i++) limiter.recordFailure(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
  expect(map.size).toBe(cap);

  // Half still recent, half long expired: neither kind may make a new address scan the map.
  now += 30_000;
  map.visited = 0;
  for (let i = 0; i < 100; i++) limiter.recordFailure(`192.0.2.${i}:${i}`);
  expect(map.size).toBe(cap);
  expect(map.visited / 100).toBeLessThanOrEqual(2);

  now += 120_000;
  map.visited = 0;
  for (let i = 0; i < 100; i++) limiter.recordFailure(`198.51.100.${i}:${i}`);
  expect(map.visited / 100).toBeLessThanOrEqual(2);
});

test("eviction forgets the address whose last failure is oldest; a limited address that keeps failing is kept", () => {
  let now = 0;
  const limiter = new AuthFailureLimiter(2, { now: () => now }, 3);
  limiter.recordFailure("a");
  limiter.recordFailure("a");
  limiter.recordFailure("b");
  limiter.recordFailure("c");
  expect(limiter.retryAfter("a")).toBeGreaterThan(0);
  now += 1_000;
  limiter.recordFailure("a"); // a is now the most recent
  limiter.recordFailure("d"); // evicts b, the stalest
  expect(limiter.retryAfter("a")).toBeGreaterThan(0);
  expect(limiter.retryAfter("b")).toBe(0);
  limiter.recordFailure("b"); // evicts c: order is now a, d, b
  limiter.recordFailure("a"); // order d, b, a
  limiter.recordFailure("e"); // evicts d
  limiter.recordFailure("b");
  expect(limiter.retryAfter("b")).toBeGreaterThan(0);
  expect(limiter.retryAfter("a")).toBeGreaterThan(0);
  expect(limiter.retryAfter("e")).toBe(0);
});
