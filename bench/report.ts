/**
 * What `bun run bench` reports: the result object (the last stdout line with --json), the ratios
 * issue #13's targets are stated in, and the human-readable tables. Definitions of the ratios:
 *
 * - tokenReadVsHello = tokenRead req/s ÷ bare Bun + Hono req/s (bench/hello.ts), same concurrency,
 *   64 connections (or the nearest concurrency both ran), PostgreSQL (else PGlite).
 * - tokenReadVsNaive = tokenRead req/s ÷ naive baseline req/s (bench/naive.ts: Hono + Prisma
 *   findUnique + WebCrypto AES-GCM, no auth/policy/audit), same PostgreSQL database, same request
 *   list, 64 connections (or the nearest both ran).
 * - pgliteVsPostgres.tokenRead = PGlite tokenRead req/s ÷ PostgreSQL tokenRead req/s, 64 connections.
 * - pgliteVsPostgres.grant = PostgreSQL 1 h grant median latency ÷ PGlite 1 h grant median latency
 *   at 1 connection (sequential); at one connection that is also PGlite's grants/s ÷ PostgreSQL's, so
 *   ≥ 0.5 means PGlite is at least half as fast. `grantByRange` gives the same for 1s/1h/24h.
 * - grantVsFloor[range] = PostgreSQL grant median ÷ PostgreSQL floor, both from the same interleaved
 *   sequential loop (bench/latency.ts); grantVsFloorPglite[range] the same on PGlite (grant on PGlite ÷
 *   PGlite floor). floor.<db>.tight holds the floor from tight loops, for reference only.
 * - tokenReadCpuUs = service CPU µs per request (utime + stime from /proc over the wrk run ÷
 *   requests) for tokenRead on PostgreSQL at 64 connections; tokenReadP99Ms its p99.
 * - rewrapPerSecond = records/s of the scaling section's rotation rewrap (bench/rewrap.ts, PostgreSQL).
 */
import type { GrantLatency, GrantRange } from "./grants.ts";
import type { Floor, ScenarioResult } from "./http.ts";
import type { LatencyStats } from "./latency.ts";
import type { ScalingResult } from "./scaling.ts";
import type { BenchDb } from "./seed.ts";
import type { LoadResult } from "./wrk.ts";

type LoadRow = Pick<LoadResult, "reqPerSec" | "p50Ms" | "p99Ms" | "errors" | "serverCpuUsPerReq"> & {
  concurrency: number;
};
type PerRange = Record<GrantRange, number | null>;

export interface BenchResult {
  machine: Record<string, unknown> & {
    cpu: string;
    cores: number;
    bun: string;
    generator: string;
    loadAverageAtStart: number[];
    loadAverageAtEnd?: number[];
  };
  settings: Record<string, unknown>;
  scenarios: Record<string, Omit<ScenarioResult, "scenario">>;
  baselines: {
    helloHono?: Record<string, LoadRow>;
    /** The naive baseline on PostgreSQL under the tokenRead request list. */
    naive?: Record<string, LoadRow & { db: "postgres" }>;
    crypto?: Record<string, { usPerOp: number; opsPerSec: number }>;
  };
  /** Sequential, 1 connection, in the grants' loop: the floor's parts and sum, per database. */
  floor?: Partial<Record<BenchDb, Floor>>;
  /** Sequential, 1 connection: time-slice grant latency per database and range. */
  grants?: Partial<Record<BenchDb, Record<GrantRange, GrantLatency>>>;
  ratios: {
    tokenReadVsHello: number | null;
    tokenReadVsHelloAt?: string;
    cryptoVsRaw: number | null;
    tokenReadVsNaive: number | null;
    tokenReadVsNaiveAt?: string;
    pgliteVsPostgres: { tokenRead: number | null; tokenReadAt?: string; grant: number | null; grantByRange: PerRange };
    grantVsFloor: PerRange;
    grantVsFloorPglite: PerRange;
  };
  tokenReadCpuUs: number | null;
  tokenReadP99Ms: number | null;
  rewrapPerSecond: number | null;
  policy?: { evaluationsPerSec: number; usPerEvaluation: number };
  scaling?: ScalingResult;
  /** CPU profiles written with --cpu-prof. */
  profiles?: string[];
}

const RANGES: GrantRange[] = ["1s", "1h", "24h"];
/** Every range named, null until measured: the JSON always has the same keys. */
export const noRanges = (): PerRange => ({ "1s": null, "1h": null, "24h": null });
const r4 = (x: number) => Math.round(x * 10_000) / 10_000;

/** Fills result.ratios and the top-level figures from what the sections measured. */
export function computeRatios(r: BenchResult, concurrencies: number[]): void {
  const near64 = [...concurrencies].sort((a, b) => Math.abs(a - 64) - Math.abs(b - 64));
  const read = (db: BenchDb, c: number) => r.scenarios[`tokenRead/${db}/c${c}`];
  const ratio = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && b > 0 ? r4(a / b) : null;

  outer: for (const db of ["postgres", "pglite"] as const)
    for (const c of near64) {
      const x = ratio(read(db, c)?.reqPerSec, r.baselines.helloHono?.[`c${c}`]?.reqPerSec);
      if (x !== null) {
        r.ratios.tokenReadVsHello = x;
        r.ratios.tokenReadVsHelloAt = `${db}, ${c} connections`;
        break outer;
      }
    }
  for (const c of near64) {
    const x = ratio(read("postgres", c)?.reqPerSec, r.baselines.naive?.[`c${c}`]?.reqPerSec);
    if (x !== null) {
      r.ratios.tokenReadVsNaive = x;
      r.ratios.tokenReadVsNaiveAt = `postgres, ${c} connections`;
      break;
    }
  }
  for (const c of near64) {
    const x = ratio(read("pglite", c)?.reqPerSec, read("postgres", c)?.reqPerSec);
    if (x !== null) {
      r.ratios.pgliteVsPostgres.tokenRead = x;
      r.ratios.pgliteVsPostgres.tokenReadAt = `${c} connections`;
      break;
    }
  }
  for (const c of near64) {
    const t = read("postgres", c);
    if (t) {
      r.tokenReadCpuUs = t.serverCpuUsPerReq ?? null;
      r.tokenReadP99Ms = t.p99Ms;
      break;
    }
  }
  const g = r.grants ?? {};
  for (const range of RANGES) {
    const byRange = ratio(g.postgres?.[range]?.medianMs, g.pglite?.[range]?.medianMs);
    r.ratios.pgliteVsPostgres.grantByRange[range] = byRange;
    const vsPg = ratio(g.postgres?.[range]?.medianMs, r.floor?.postgres?.floorMs);
    r.ratios.grantVsFloor[range] = vsPg;
    const vsLite = ratio(g.pglite?.[range]?.medianMs, r.floor?.pglite?.floorMs);
    r.ratios.grantVsFloorPglite[range] = vsLite;
  }
  r.ratios.pgliteVsPostgres.grant = r.ratios.pgliteVsPostgres.grantByRange["1h"];
  r.rewrapPerSecond = r.scaling?.rewrap.recordsPerSec ?? null;
}

const pad = (s: unknown, n: number) => String(s ?? "-").padStart(n);

export function printTable(r: BenchResult): void {
  const m = r.machine;
  console.log(
    `machine: ${m.cores} cores (${m.cpu}), bun ${m.bun}, ${m.generator}; load average ${m.loadAverageAtStart.join(" ")} → ${m.loadAverageAtEnd?.join(" ")}`,
  );
  const loadRow = (name: string, db: string, s: LoadRow) =>
    console.log(
      `${name.padEnd(16)} ${db.padEnd(9)} ${pad(s.concurrency, 5)} ${pad(s.reqPerSec, 8)} ${pad(s.p50Ms, 8)} ${pad(s.p99Ms, 8)} ${pad(s.errors, 7)} ${pad(s.serverCpuUsPerReq, 10)}`,
    );
  if (r.baselines.helloHono || r.baselines.naive || Object.keys(r.scenarios).length) {
    console.log(
      `\n${"scenario".padEnd(16)} ${"db".padEnd(9)} ${pad("conns", 5)} ${pad("req/s", 8)} ${pad("p50 ms", 8)} ${pad("p99 ms", 8)} ${pad("errors", 7)} ${pad("cpu µs/req", 10)}`,
    );
    for (const h of Object.values(r.baselines.helloHono ?? {})) loadRow("hello (Hono)", "-", h);
    for (const n of Object.values(r.baselines.naive ?? {})) loadRow("naive baseline", "postgres", n);
    for (const [k, s] of Object.entries(r.scenarios)) loadRow(k.split("/")[0]!, s.db, s);
  }
  if (r.floor || r.grants) {
    console.log(
      `\n${"sequential, 1 connection".padEnd(26)} ${"db".padEnd(9)} ${pad("median ms", 10)} ${pad("p99 ms", 8)} ${pad("mean ms", 8)} ${pad("n", 5)} ${pad("slices", 6)} ${pad("× floor", 8)}`,
    );
    const row = (name: string, db: string, s: Partial<LatencyStats>, slices?: number, vsFloor?: number) =>
      console.log(
        `${name.padEnd(26)} ${db.padEnd(9)} ${pad(s.medianMs, 10)} ${pad(s.p99Ms, 8)} ${pad(s.meanMs, 8)} ${pad(s.iterations, 5)} ${pad(slices, 6)} ${pad(vsFloor, 8)}`,
      );
    for (const db of ["postgres", "pglite"] as const) {
      const f = r.floor?.[db];
      if (f) {
        row("HTTP round trip (Hono)", db, f.roundTrip);
        row("autocommit INSERT", db, f.insert);
        row("floor (round trip+INSERT)", db, { medianMs: f.floorMs });
        row("  round trip, tight loop", db, f.tight.roundTrip);
        row("  INSERT, tight loop", db, f.tight.insert);
        row("  floor from tight loops", db, { medianMs: f.tight.floorMs });
      }
      for (const range of RANGES) {
        const s = r.grants?.[db]?.[range];
        if (!s) continue;
        const vs = (db === "postgres" ? r.ratios.grantVsFloor : r.ratios.grantVsFloorPglite)[range];
        row(`grant ${range}`, db, s, s.slices, vs ?? undefined);
      }
    }
  }
  if (r.baselines.crypto) {
    console.log(`\n${"crypto".padEnd(42)} ${pad("µs/op", 9)} ${pad("ops/s", 9)}`);
    for (const [k, v] of Object.entries(r.baselines.crypto))
      console.log(`${k.padEnd(42)} ${pad(v.usPerOp, 9)} ${pad(v.opsPerSec, 9)}`);
  }
  if (r.policy)
    console.log(
      `\npolicy.evaluate (10 policies): ${r.policy.usPerEvaluation} µs, ${r.policy.evaluationsPerSec} evaluations/s`,
    );
  if (r.scaling) {
    console.log(
      `\n${"token read, PostgreSQL".padEnd(24)} ${pad("tokens", 8)} ${pad("conns", 5)} ${pad("req/s", 8)} ${pad("p50 ms", 8)} ${pad("p99 ms", 8)} ${pad("errors", 7)} ${pad("seed rows/s", 11)}`,
    );
    for (const s of r.scaling.tokenRead)
      console.log(
        `${"".padEnd(24)} ${pad(s.tokens, 8)} ${pad(s.concurrency, 5)} ${pad(s.reqPerSec, 8)} ${pad(s.p50Ms, 8)} ${pad(s.p99Ms, 8)} ${pad(s.errors, 7)} ${pad(s.seedRowsPerSec, 11)}`,
      );
    console.log(
      `rewrap (PostgreSQL, ${r.scaling.rewrap.records} records, batch ${r.scaling.rewrap.batchSize}): ${r.scaling.rewrap.recordsPerSec} records/s`,
    );
    console.log(
      `audit verify (PostgreSQL, ${r.scaling.auditVerify.rows} rows): ${r.scaling.auditVerify.rowsPerSec} rows/s (valid: ${r.scaling.auditVerify.valid})`,
    );
  }
  printTargets(r);
  if (r.profiles?.length) console.log(`\nCPU profiles: ${r.profiles.join(" ")}`);
}

/** Issue #13's targets next to this run's figures (display only; the bench never asserts on numbers). */
function printTargets(r: BenchResult): void {
  const x = r.ratios;
  type Row = [string, number | null | undefined, string, (v: number) => boolean];
  const rows: Row[] = [
    [`token read / bare Hono (${x.tokenReadVsHelloAt ?? "n/a"})`, x.tokenReadVsHello, "≥ 0.06", (v) => v >= 0.06],
    ["token read service CPU µs/req (postgres)", r.tokenReadCpuUs, "≤ 200", (v) => v <= 200],
    ["token read p99 ms (postgres)", r.tokenReadP99Ms, "≤ 25", (v) => v <= 25],
    [`token read / naive (${x.tokenReadVsNaiveAt ?? "n/a"})`, x.tokenReadVsNaive, "≥ 1.0", (v) => v >= 1],
    ["PGlite / PostgreSQL token read", x.pgliteVsPostgres.tokenRead, "≥ 0.5", (v) => v >= 0.5],
    ["PGlite / PostgreSQL grant (1 h, speed)", x.pgliteVsPostgres.grant, "≥ 0.5", (v) => v >= 0.5],
    ...RANGES.map((g) => [`grant ${g} / floor (postgres)`, x.grantVsFloor[g], "≤ 1.5", (v: number) => v <= 1.5] as Row),
    ...RANGES.map(
      (g) => [`grant ${g} / floor (pglite)`, x.grantVsFloorPglite[g], "≤ 1.5", (v: number) => v <= 1.5] as Row,
    ),
    ["rewrap records/s", r.rewrapPerSecond, "≥ 20000", (v) => v >= 20_000],
    [`envelope.decrypt / raw WebCrypto`, x.cryptoVsRaw, "-", () => true],
  ];
  console.log(`\n${"issue #13 targets".padEnd(48)} ${pad("this run", 10)} ${pad("target", 9)}`);
  for (const [name, v, target, ok] of rows) {
    const mark = v === null || v === undefined ? "" : target === "-" ? "" : ok(v) ? " met" : " not met";
    console.log(`${name.padEnd(48)} ${pad(v ?? "n/a", 10)} ${pad(target, 9)}${mark}`);
  }
}
