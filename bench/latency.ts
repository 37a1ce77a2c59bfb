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
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { startHello } from "./hello.ts";

export interface LatencyStats {
  medianMs: number;
  p99Ms: number;
  meanMs: number;
  iterations: number;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Runs `op` `warmup` times untimed, then `iterations` times one after the other, timing each. */
export async function sequential(
  op: (i: number) => Promise<void>,
  iterations: number,
  warmup = Math.min(20, iterations),
): Promise<LatencyStats> {
  for (let i = 0; i < warmup; i++) await op(-1 - i);
  const ms = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await op(i);
    ms[i] = performance.now() - t0;
  }
  ms.sort();
  const at = (q: number) => ms[Math.min(iterations - 1, Math.ceil(q * iterations) - 1)]!;
  return {
    medianMs: round3(iterations % 2 ? ms[(iterations - 1) / 2]! : (ms[iterations / 2 - 1]! + ms[iterations / 2]!) / 2),
    p99Ms: round3(at(0.99)),
    meanMs: round3(ms.reduce((a, b) => a + b, 0) / iterations),
    iterations,
  };
}

/** The HTTP half of the floor: GET /hello on the bare Hono baseline, one at a time. */
export async function helloRoundTrip(iterations: number): Promise<LatencyStats> {
  const h = await startHello();
  try {
    const url = `${h.url}/hello`;
    return await sequential(async () => {
      const res = await fetch(url);
      await res.text();
      if (res.status !== 200) throw new Error(`hello answered ${res.status}`);
    }, iterations);
  } finally {
    await h.stop();
  }
}

const FLOOR_TABLE = `CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)`;
const FLOOR_INSERT = "INSERT INTO bench_floor (payload) VALUES ($1)";

/**
 * The database half of the floor on PostgreSQL: one autocommit INSERT per round trip through `pg`,
 * durable as the server is configured (fsync and synchronous_commit on here).
 */
export async function postgresInsertFloor(url: string, iterations: number): Promise<LatencyStats> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(FLOOR_TABLE);
    return await sequential(async (i) => {
      await client.query(FLOOR_INSERT, [`floor-${i}`]);
    }, iterations);
  } finally {
    await client.query("DROP TABLE IF EXISTS bench_floor").catch(() => {});
    await client.end();
  }
}

/** The database half of the floor on PGlite: its own `query` API on a fresh on-disk data directory, in this process. */
export async function pgliteInsertFloor(iterations: number): Promise<LatencyStats> {
  const dir = mkdtempSync(join(tmpdir(), "chronokms-bench-floor-"));
  const db = new PGlite(join(dir, "pglite"));
  try {
    await db.waitReady;
    await db.query(FLOOR_TABLE);
    return await sequential(async (i) => {
      await db.query(FLOOR_INSERT, [`floor-${i}`]);
    }, iterations);
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
