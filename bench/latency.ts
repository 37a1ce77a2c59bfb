/**
 * Sequential latency at one connection: a tight loop of one operation at a time, timed one by one
 * (median, p99, mean). Used for the floor and for time-slice grants, where the question is "how
 * long does ONE request take on an idle service", which wrk's throughput figures do not answer.
 *
 * Definitions (copied into the README by the lead):
 * - floor(db) = median HTTP round trip to the bare Bun + Hono baseline (bench/hello.ts, GET /hello,
 *   Bun fetch over loopback, keep-alive, body read) + median of one durable single-row autocommit
 *   INSERT on that database through the driver the service uses (`pg` on PostgreSQL, into a table of
 *   the bench database; PGlite's own `query` API on an on-disk PGlite data directory opened the way
 *   the service opens it). Both measured sequentially at 1 connection, in the same run. Note: PGlite
 *   (0.5.16, Node filesystem) issues no fsync at all (strace of 100 INSERTs: pwrite64 only), so its
 *   "durable" INSERT reaches the OS page cache, not the disk; PostgreSQL's waits for fdatasync.
 * - grant(range, db) = POST /v1/access-requests {resource: timeslice, timeRange of `range`} on the
 *   real service (bench/http.ts: API key, whitelist policy, durable audit + access_requests rows, key
 *   material in the answer), one at a time over loopback with the same Bun fetch client, each
 *   request a different range starting anywhere in the past year; median and p99.
 * - Per database, the three grant ranges and both halves of the floor are measured in ONE loop,
 *   interleaved (each round runs every operation once, in a rotating order), so that on a shared
 *   machine they all see the same background load and the grant ÷ floor ratios compare like with like.
 *   Each half is also timed in a tight loop of its own (`floor.<db>.tight`), for reference only: there
 *   the server is woken every few µs and every cache is warm, which no real request enjoys (on a
 *   loaded 2-core machine the interleaved round trip was ~0.2-0.6 ms against ~0.02 ms in a tight loop).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { startHello } from "./hello.ts";
import type { BenchDb } from "./seed.ts";

export interface LatencyStats {
  medianMs: number;
  p99Ms: number;
  meanMs: number;
  iterations: number;
}

/** One operation of a sequential loop; `i` is the iteration (negative during warm-up). */
export type Op = (i: number) => Promise<void>;

const round3 = (x: number) => Math.round(x * 1000) / 1000;

function stats(ms: Float64Array): LatencyStats {
  const n = ms.length;
  ms.sort();
  const at = (q: number) => ms[Math.min(n - 1, Math.ceil(q * n) - 1)]!;
  return {
    medianMs: round3(n % 2 ? ms[(n - 1) / 2]! : (ms[n / 2 - 1]! + ms[n / 2]!) / 2),
    p99Ms: round3(at(0.99)),
    meanMs: round3(ms.reduce((a, b) => a + b, 0) / n),
    iterations: n,
  };
}

/**
 * Runs every op `warmup` times untimed, then `iterations` rounds; each round awaits every op once,
 * one after the other (never two at a time), starting one op further each round, timing each call.
 */
export async function interleaved<K extends string>(
  ops: Record<K, Op>,
  iterations: number,
  warmup = Math.min(20, iterations),
): Promise<Record<K, LatencyStats>> {
  const keys = Object.keys(ops) as K[];
  for (let i = 0; i < warmup; i++) for (const k of keys) await ops[k](-1 - i);
  const ms = keys.map(() => new Float64Array(iterations));
  for (let i = 0; i < iterations; i++)
    for (let j = 0; j < keys.length; j++) {
      const at = (i + j) % keys.length;
      const t0 = performance.now();
      await ops[keys[at]!](i);
      ms[at]![i] = performance.now() - t0;
    }
  return Object.fromEntries(keys.map((k, j) => [k, stats(ms[j]!)])) as Record<K, LatencyStats>;
}

/** One operation timed alone: `interleaved` with a single op. */
export async function sequential(op: Op, iterations: number, warmup?: number): Promise<LatencyStats> {
  return (await interleaved({ op }, iterations, warmup)).op;
}

export interface FloorTarget {
  /** The HTTP half: GET /hello on the bare Hono baseline (its own process), body read. */
  roundTrip: Op;
  /** The database half: one single-row autocommit INSERT. */
  insert: Op;
  close(): Promise<void>;
}

const FLOOR_TABLE = `CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)`;
const FLOOR_INSERT = "INSERT INTO bench_floor (payload) VALUES ($1)";

/**
 * The floor's two halves for `kind`. PostgreSQL: a `pg` client on `postgresUrl` (the bench database),
 * durable as the server is configured (fsync and synchronous_commit on here). PGlite: its own
 * `query` API on a fresh on-disk data directory in this process (the service holds the bench one).
 */
export async function openFloor(kind: BenchDb, postgresUrl?: string): Promise<FloorTarget> {
  const hello = await startHello();
  const url = `${hello.url}/hello`;
  const roundTrip: Op = async () => {
    const res = await fetch(url);
    await res.text();
    if (res.status !== 200) throw new Error(`hello answered ${res.status}`);
  };
  try {
    if (kind === "postgres") {
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      await client.query(FLOOR_TABLE);
      return {
        roundTrip,
        insert: async (i) => void (await client.query(FLOOR_INSERT, [`floor-${i}`])),
        async close() {
          await client.query("DROP TABLE IF EXISTS bench_floor").catch(() => {});
          await client.end();
          await hello.stop();
        },
      };
    }
    const dir = mkdtempSync(join(tmpdir(), "chronokms-bench-floor-"));
    const db = new PGlite(join(dir, "pglite"));
    await db.waitReady;
    await db.query(FLOOR_TABLE);
    return {
      roundTrip,
      insert: async (i) => void (await db.query(FLOOR_INSERT, [`floor-${i}`])),
      async close() {
        await db.close();
        rmSync(dir, { recursive: true, force: true });
        await hello.stop();
      },
    };
  } catch (err) {
    await hello.stop();
    throw err;
  }
}
