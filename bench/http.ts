/**
 * HTTP load against the real service: `bun src/index.ts` in its own process on a free loopback
 * port, on a fresh PostgreSQL database or a temp PGlite DATA_DIR; tokens bulk-seeded before it
 * starts; requesters, keys and a whitelist provisioned through the HTTP API; wrk (bench/wrk.ts)
 * in a third process. `runHttpBench()` for `bun run bench`: per database, the wrk scenarios, then (on
 * PostgreSQL, right after tokenRead) the naive baseline on the same database (bench/naive.ts), then
 * sequential grants and the INSERT half of the floor (bench/grants.ts, bench/latency.ts).
 * Reports numbers; never asserts on them.
 */
import { join } from "node:path";
import { generateApiKey } from "../src/access/api-key-format.ts";
import type { Database } from "../src/db/database.ts";
import { spawnAndWaitForUrl, type Spawned } from "./process.ts";
import { benchUserId } from "./seal-job.ts";
import { GRANT_RANGES, grantOp, type GrantLatency, type GrantRange } from "./grants.ts";
import { interleaved, type LatencyStats, openFloor, sequential } from "./latency.ts";
import { naiveKeyHex, naiveRequests, seedNaiveTokens, startNaive } from "./naive.ts";
import {
  createBenchDatabase,
  openForSeeding,
  seedTokens,
  settleAfterLoad,
  type BenchDatabase,
  type BenchDb,
} from "./seed.ts";
import { runLoad, type LoadRequest, type LoadResult } from "./wrk.ts";

const REPO = join(import.meta.dir, "..");
export const READ_INTEGRATION = "gmail";

export interface BenchService {
  kind: BenchDb;
  url: string;
  pid: number;
  admin: string;
  writer: string;
  reader: string;
  bdb: BenchDatabase;
  stop(): Promise<void>;
}

async function call(
  url: string,
  key: string,
  method: string,
  path: string,
  body: unknown,
  expected: number,
  // biome-ignore lint/suspicious/noExplicitAny: the JSON body of whichever route was called; the caller reads the fields it needs
): Promise<Record<string, any>> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== expected)
    throw new Error(`${method} ${path}: expected ${expected}, got ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/**
 * A fresh database with `seedTokens` token rows (users 0..n-1 of READ_INTEGRATION), the service on
 * it, a writer, a reader and a whitelist admitting the reader. The service logs at its default
 * level (the per-request access line included) to a file.
 */
export async function startBenchService(
  kind: BenchDb,
  opts: {
    seedTokens: number;
    env?: Record<string, string>;
    bunArgs?: string[];
    /** More seeding on the same database before the service opens it (e.g. the naive baseline's rows). */
    seedMore?: (db: Database) => Promise<void>;
  },
): Promise<BenchService> {
  const bdb = await createBenchDatabase(kind);
  let proc: Spawned | undefined;
  try {
    const s = await openForSeeding(bdb);
    try {
      if (opts.seedTokens > 0)
        await seedTokens(s.db, s.keys, { integration: READ_INTEGRATION, count: opts.seedTokens });
      await opts.seedMore?.(s.db);
      await settleAfterLoad(s.db);
    } finally {
      await s.close(); // PGlite is one process at a time: the service opens it next
    }
    const admin = generateApiKey().apiKey;
    proc = await spawnAndWaitForUrl(["bun", ...(opts.bunArgs ?? []), join(REPO, "src/index.ts")], {
      // A temp cwd, so a developer's .env cannot point the service elsewhere.
      cwd: bdb.kind === "pglite" ? bdb.env.DATA_DIR : undefined,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NODE_ENV: "production",
        HOST: "127.0.0.1",
        PORT: "0",
        MASTER_KEY_ENCRYPTION_KEY: bdb.kekHex,
        BOOTSTRAP_ADMIN_KEY: admin,
        ...bdb.env,
        ...opts.env,
      },
      match: /"msg":"listening".*?"url":"(http:[^"]+)"/,
    });
    const url = proc.url;
    const mk = async (requesterId: string, roles: string[]) => {
      const r = await call(url, admin, "POST", "/v1/requesters", { requesterId, name: requesterId }, 201);
      return (await call(url, admin, "POST", `/v1/requesters/${r.id}/api-keys`, { roles }, 201)).apiKey as string;
    };
    const writer = await mk("bench-writer", ["writer"]);
    const reader = await mk("bench-reader", ["reader"]);
    await call(
      url,
      admin,
      "POST",
      "/v1/policies",
      { name: "bench-readers", type: "whitelist", config: { requesters: ["bench-reader"] } },
      201,
    );
    const p = proc;
    return {
      kind,
      url,
      pid: p.pid,
      admin,
      writer,
      reader,
      bdb,
      async stop() {
        await p.stop();
        await bdb.dispose();
      },
    };
  } catch (err) {
    await proc?.stop();
    await bdb.dispose();
    throw err;
  }
}

/** Deterministic pseudo-random numbers, so two runs send the same requests. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return x / 2 ** 32;
  };
}

export interface Scenario {
  name: string;
  /** Which key signs the requests; null = public route. */
  key: (s: BenchService) => string | null;
  requests: (s: BenchService, seeded: number) => LoadRequest[];
}

const DAY = 86_400_000;
const YEAR = 365 * DAY;

/** A time-slice request for `rangeMs`, starting anywhere in the past year (mostly uncached slices, as in real use). */
function timesliceRequests(rangeMs: number, n = 4000): LoadRequest[] {
  const r = rng(rangeMs);
  const now = Date.now();
  return Array.from({ length: n }, () => {
    const start = Math.floor(now - YEAR + r() * (YEAR - rangeMs));
    return {
      method: "POST",
      path: "/v1/access-requests",
      body: JSON.stringify({
        resource: { type: "timeslice" },
        timeRange: { start, end: start + rangeMs },
        purpose: "bench",
      }),
    };
  });
}

export const SCENARIOS: Scenario[] = [
  {
    // auth (cached) + policy + durable audit/access_requests row + SELECT + two envelope opens; never refreshes (no expiry)
    name: "tokenRead",
    key: (s) => s.reader,
    requests: (_s, seeded) => {
      const r = rng(7);
      return Array.from({ length: Math.min(4000, seeded) }, () => ({
        method: "GET",
        path: `/v1/tokens/${READ_INTEGRATION}/${benchUserId(Math.floor(r() * seeded))}?purpose=bench`,
      }));
    },
  },
  {
    // seal both fields + upsert + TOKEN_STORED audit row; a fixed set of 2000 users, so most writes replace
    name: "tokenWrite",
    key: (s) => s.writer,
    requests: () =>
      Array.from({ length: 2000 }, (_, i) => ({
        method: "PUT",
        path: `/v1/tokens/outlook/${benchUserId(i)}`,
        body: JSON.stringify({
          accessToken: `EwB4A8l6BAAU${"w".repeat(140)}${i}`,
          refreshToken: `M.C5${"q".repeat(90)}${i}`,
          scope: "Mail.Read",
          tokenType: "Bearer",
        }),
      })),
  },
  { name: "timeslice1s", key: (s) => s.reader, requests: () => timesliceRequests(1000) },
  { name: "timeslice24h", key: (s) => s.reader, requests: () => timesliceRequests(DAY) },
  {
    // evaluation + ACCESS_SIMULATED audit row (admin route)
    name: "policySimulate",
    key: (s) => s.admin,
    requests: () => {
      const now = Date.now();
      return Array.from({ length: 500 }, (_, i) => ({
        method: "POST",
        path: "/v1/policies/simulate",
        body: JSON.stringify({
          requesterId: i % 2 ? "bench-reader" : "someone-else",
          resource: { type: "token", integration: READ_INTEGRATION, userId: benchUserId(i) },
          timeRange: { start: now, end: now },
          purpose: "bench",
        }),
      }));
    },
  },
  { name: "jwks", key: () => null, requests: () => [{ method: "GET", path: "/.well-known/jwks.json" }] },
];

export interface ScenarioResult extends LoadResult {
  scenario: string;
  db: BenchDb;
  concurrency: number;
}

export interface HttpBenchOptions {
  dbs: BenchDb[];
  concurrencies: number[];
  durationSec: number;
  /** Short warm-up per scenario (JIT, caches, pool), at 16 connections. */
  warmupSec: number;
  /** wrk scenarios to run (all when undefined; none when empty). */
  scenarios?: string[];
  /** Token rows seeded for the read scenario. */
  seedTokens: number;
  /** The naive baseline (bench/naive.ts) under the tokenRead load, on PostgreSQL. */
  naive?: boolean;
  /** Sequential grant latency (bench/grants.ts) and the floor (bench/latency.ts), `iterations` each. */
  grants?: { iterations: number };
  /** Start the service (and the naive baseline) under `bun --cpu-prof`, profiles written here on stop. */
  cpuProfDir?: string;
  progress?: (line: string) => void;
}

export interface HttpBenchResult {
  scenarios: ScenarioResult[];
  /** The naive baseline under the tokenRead request list, PostgreSQL. */
  naive: Array<LoadResult & { concurrency: number }>;
  grants: Partial<Record<BenchDb, Record<GrantRange, GrantLatency>>>;
  /** The floor, measured in the same interleaved loop as the grants (bench/latency.ts). */
  floor: Partial<Record<BenchDb, Floor>>;
  /** CPU profiles written (with cpuProfDir). */
  profiles: string[];
}

/** One request of the scenario by hand first: a scenario that answers errors is a broken bench, not a figure. */
async function probe(svc: BenchService, sc: Scenario, req: LoadRequest, key: string | null): Promise<void> {
  const res = await fetch(`${svc.url}${req.path}`, {
    method: req.method,
    headers: {
      ...(key ? { Authorization: `Bearer ${key}` } : {}),
      ...(req.body ? { "Content-Type": "application/json" } : {}),
    },
    body: req.body,
  });
  const text = await res.text();
  if (res.status >= 300)
    throw new Error(
      `bench scenario ${sc.name}: ${req.method} ${req.path} answered ${res.status}: ${text.slice(0, 300)}`,
    );
}

export async function runScenario(
  svc: BenchService,
  sc: Scenario,
  concurrency: number,
  durationSec: number,
  seeded: number,
): Promise<LoadResult> {
  const key = sc.key(svc);
  const requests = sc.requests(svc, seeded);
  await probe(svc, sc, requests[0]!, key);
  return runLoad({
    baseUrl: svc.url,
    requests,
    headers: key ? { Authorization: `Bearer ${key}` } : {},
    connections: concurrency,
    durationSec,
    serverPid: svc.pid,
  });
}

const profArgs = (dir: string | undefined, name: string) =>
  dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];

export async function runHttpBench(o: HttpBenchOptions): Promise<HttpBenchResult> {
  const out: HttpBenchResult = { scenarios: [], naive: [], grants: {}, floor: {}, profiles: [] };
  const scenarios = SCENARIOS.filter((s) => !o.scenarios || o.scenarios.includes(s.name));
  const step = (line: string) => o.progress?.(`http: ${line}`);
  for (const db of o.dbs) {
    const naive = o.naive && db === "postgres";
    if (!scenarios.length && !naive && !o.grants) continue;
    const naiveKey = naiveKeyHex();
    step(`starting the service on ${db} (seeding ${o.seedTokens} tokens${naive ? " + as many naive rows" : ""})…`);
    const svc = await startBenchService(db, {
      seedTokens: o.seedTokens,
      bunArgs: profArgs(o.cpuProfDir, `service-${db}`),
      ...(naive ? { seedMore: (d: Database) => seedNaiveTokens(d, naiveKey, o.seedTokens) } : {}),
    });
    try {
      for (const sc of scenarios) {
        if (o.warmupSec > 0) await runScenario(svc, sc, 16, o.warmupSec, o.seedTokens);
        for (const c of o.concurrencies) {
          const r = await runScenario(svc, sc, c, o.durationSec, o.seedTokens);
          out.scenarios.push({ scenario: sc.name, db, concurrency: c, ...r });
          step(
            `${sc.name} ${db} c=${c}: ${r.reqPerSec} req/s p50 ${r.p50Ms} ms p99 ${r.p99Ms} ms errors ${r.errors} server cpu ${r.serverCpuUsPerReq ?? "?"} µs/req`,
          );
        }
        // Right after the read it is compared with: same database state, as close in time as it gets.
        if (naive && sc.name === "tokenRead") out.naive = await runNaive(svc, naiveKey, o);
      }
      if (naive && !out.naive.length) out.naive = await runNaive(svc, naiveKey, o);
      if (o.grants) {
        const r = await grantsAndFloor(svc, o.grants.iterations);
        out.grants[db] = r.grants;
        out.floor[db] = r.floor;
        for (const [range, g] of Object.entries(r.grants) as Array<[GrantRange, GrantLatency]>)
          step(`grant ${range} ${db} (${g.slices} slices), 1 connection: median ${g.medianMs} ms p99 ${g.p99Ms} ms`);
        step(
          `floor ${db}: ${r.floor.floorMs} ms (round trip ${r.floor.roundTrip.medianMs} + INSERT ${r.floor.insert.medianMs}); in tight loops ${r.floor.tight.floorMs} ms`,
        );
      }
    } finally {
      await svc.stop();
    }
    if (o.cpuProfDir) out.profiles.push(join(o.cpuProfDir, `service-${db}.cpuprofile`));
  }
  if (o.cpuProfDir && out.naive.length) out.profiles.push(join(o.cpuProfDir, "naive-postgres.cpuprofile"));
  return out;
}

export interface Floor {
  roundTrip: LatencyStats;
  insert: LatencyStats;
  /** roundTrip.medianMs + insert.medianMs, both from the loop the grants ran in: the floor the ratios use. */
  floorMs: number;
  /**
   * The same two halves each in a tight loop of its own, right after (for reference: warm caches and
   * a server woken every few µs make these faster than anything a real request sees).
   */
  tight: { roundTrip: LatencyStats; insert: LatencyStats; floorMs: number };
}

/** The three grant ranges and the floor's two halves, interleaved in one sequential loop on `svc`'s database. */
async function grantsAndFloor(
  svc: BenchService,
  iterations: number,
): Promise<{ grants: Record<GrantRange, GrantLatency>; floor: Floor }> {
  const warmup = Math.min(20, iterations);
  const floor = await openFloor(svc.kind, svc.bdb.env.DATABASE_URL);
  try {
    const g = Object.fromEntries(
      (Object.keys(GRANT_RANGES) as GrantRange[]).map((r) => [r, grantOp(svc, r, iterations, warmup)]),
    ) as Record<GrantRange, ReturnType<typeof grantOp>>;
    const s = await interleaved(
      { "1s": g["1s"].op, "1h": g["1h"].op, "24h": g["24h"].op, roundTrip: floor.roundTrip, insert: floor.insert },
      iterations,
      warmup,
    );
    const grants = {} as Record<GrantRange, GrantLatency>;
    for (const r of Object.keys(GRANT_RANGES) as GrantRange[])
      grants[r] = { ...s[r], rangeMs: g[r].rangeMs, slices: g[r].slices() };
    const sum = (a: LatencyStats, b: LatencyStats) => Math.round((a.medianMs + b.medianMs) * 1000) / 1000;
    const tightRoundTrip = await sequential(floor.roundTrip, iterations, warmup);
    const tightInsert = await sequential(floor.insert, iterations, warmup);
    return {
      grants,
      floor: {
        roundTrip: s.roundTrip,
        insert: s.insert,
        floorMs: sum(s.roundTrip, s.insert),
        tight: { roundTrip: tightRoundTrip, insert: tightInsert, floorMs: sum(tightRoundTrip, tightInsert) },
      },
    };
  } finally {
    await floor.close();
  }
}

/** The naive baseline on the service's database, under the tokenRead request list, at the same concurrencies. */
async function runNaive(svc: BenchService, keyHex: string, o: HttpBenchOptions): Promise<HttpBenchResult["naive"]> {
  const read = SCENARIOS.find((s) => s.name === "tokenRead")!;
  const requests = naiveRequests(read.requests(svc, o.seedTokens));
  const n = await startNaive(svc.bdb.env.DATABASE_URL!, keyHex, profArgs(o.cpuProfDir, "naive-postgres"));
  try {
    const res = await fetch(`${n.url}${requests[0]!.path}`);
    const text = await res.text();
    if (res.status !== 200) throw new Error(`naive baseline answered ${res.status}: ${text.slice(0, 300)}`);
    if (o.warmupSec > 0) await runLoad({ baseUrl: n.url, requests, connections: 16, durationSec: o.warmupSec });
    const out = [];
    for (const c of o.concurrencies) {
      const r = await runLoad({
        baseUrl: n.url,
        requests,
        connections: c,
        durationSec: o.durationSec,
        serverPid: n.pid,
      });
      o.progress?.(
        `http: naive baseline postgres c=${c}: ${r.reqPerSec} req/s p50 ${r.p50Ms} ms p99 ${r.p99Ms} ms errors ${r.errors} server cpu ${r.serverCpuUsPerReq ?? "?"} µs/req`,
      );
      out.push({ concurrency: c, ...r });
    }
    return out;
  } finally {
    await n.stop();
  }
}

/** The bare Bun + Hono ceiling at the same concurrencies and duration. */
export async function runHelloBench(
  o: Pick<HttpBenchOptions, "concurrencies" | "durationSec" | "warmupSec" | "progress">,
): Promise<Array<LoadResult & { concurrency: number }>> {
  const { startHello } = await import("./hello.ts");
  const h = await startHello();
  try {
    const requests: LoadRequest[] = [{ method: "GET", path: "/hello" }];
    if (o.warmupSec > 0) await runLoad({ baseUrl: h.url, requests, connections: 16, durationSec: o.warmupSec });
    const out = [];
    for (const c of o.concurrencies) {
      const r = await runLoad({
        baseUrl: h.url,
        requests,
        connections: c,
        durationSec: o.durationSec,
        serverPid: h.pid,
      });
      o.progress?.(`hello c=${c}: ${r.reqPerSec} req/s p50 ${r.p50Ms} ms p99 ${r.p99Ms} ms`);
      out.push({ concurrency: c, ...r });
    }
    return out;
  } finally {
    await h.stop();
  }
}

if (import.meta.main) {
  const r = await runHttpBench({
    dbs: ["postgres", "pglite"],
    naive: true,
    grants: { iterations: 50 },
    concurrencies: [1, 16],
    durationSec: 2,
    warmupSec: 1,
    seedTokens: 1000,
    progress: console.error,
  });
  console.log(r);
  (await import("./seed.ts")).closeSealWorkers();
}
