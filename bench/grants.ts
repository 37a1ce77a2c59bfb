/**
 * Time-slice grant latency at one connection (definitions in bench/latency.ts): for ranges of
 * 1 second, 1 hour and 24 hours of past data, one POST /v1/access-requests at a time against the
 * bench service, each a different range somewhere in the past year (so mostly slices no earlier
 * request derived). With the service's default SLICE_SECONDS=60 (bench/seed.ts seeds the key
 * version with it), that is 1-2, 61 and 1,441 slices.
 */
import type { BenchService } from "./http.ts";
import type { LatencyStats, Op } from "./latency.ts";

export const GRANT_RANGES = { "1s": 1000, "1h": 3_600_000, "24h": 86_400_000 } as const;
export type GrantRange = keyof typeof GRANT_RANGES;

export interface GrantLatency extends LatencyStats {
  rangeMs: number;
  /** Slices the grants covered (median over the run). */
  slices: number;
}

const YEAR_MS = 365 * 86_400_000;

/** Deterministic starts, so two runs ask for the same ranges. */
function starts(rangeMs: number, n: number, now: number): number[] {
  let x = (rangeMs % 2 ** 31) + 17;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return Math.floor(now - YEAR_MS + (x / 2 ** 32) * (YEAR_MS - rangeMs));
  });
}

/**
 * One grant per call for `range`, as an op for `interleaved` (warm-up calls get negative `i` and
 * their own ranges); `slices()` afterwards gives the median slice count of the timed calls. Bodies
 * are parsed after the loop, so the client's JSON parse is not timed.
 */
export function grantOp(svc: BenchService, range: GrantRange, iterations: number, warmup: number) {
  const rangeMs = GRANT_RANGES[range];
  const s = starts(rangeMs, iterations + warmup, Date.now());
  const bodies: string[] = [];
  const url = `${svc.url}/v1/access-requests`;
  const headers = { Authorization: `Bearer ${svc.reader}`, "Content-Type": "application/json" };
  const op: Op = async (i) => {
    const start = s[i < 0 ? iterations - 1 - i : i]!;
    const res = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify({
        resource: { type: "timeslice" },
        timeRange: { start, end: start + rangeMs },
        purpose: "bench",
      }),
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`grant ${range} on ${svc.kind}: ${res.status} ${text.slice(0, 300)}`);
    if (i >= 0) bodies.push(text);
  };
  const slices = () => {
    const n = bodies
      .map((b) => {
        const g = JSON.parse(b) as { slices: { from: number; to: number } };
        return g.slices.to - g.slices.from + 1;
      })
      .sort((a, b) => a - b);
    return n[Math.floor(n.length / 2)] ?? 0;
  };
  return { op, rangeMs, slices };
}
