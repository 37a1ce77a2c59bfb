/**
 * Bulk seeding for the bench: token rows sealed exactly as PUT /v1/tokens seals them
 * (`sealTokens`: v2 token envelopes, ~15 µs a field, so on this thread), inserted in large unnest()
 * batches, the insert of one batch overlapping the sealing of the next. Also the throwaway
 * databases the bench runs on.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { generateKek, kekFingerprint } from "../src/crypto/index.ts";
import { openDatabase, type Database, type DatabaseTarget } from "../src/db/database.ts";
import { applyMigrations } from "../src/db/migrate.ts";
import { createLogger } from "../src/log.ts";
import { createKeyService, type ManagedKeyService } from "../src/keys/service.ts";
import { sealTokens } from "../src/tokens/record.ts";
import { benchAccessToken, benchRefreshToken, benchUserId, type SealedRow } from "./seal-job.ts";

export type BenchDb = "postgres" | "pglite";

/**
 * The seeded key version's slice length: the service's default SLICE_SECONDS, so a grant covers as
 * many slices as it would for a user who kept the default (a 24 h range = 1,441 slices).
 */
export const BENCH_SLICE_SECONDS = 60;

export const POSTGRES_ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A fresh database (PostgreSQL: a new uniquely named database; PGlite: a temp DATA_DIR) and its KEK. */
export interface BenchDatabase {
  kind: BenchDb;
  /** The environment the service needs to use it. */
  env: Record<string, string>;
  target: DatabaseTarget;
  kekHex: string;
  dispose(): Promise<void>;
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export async function createBenchDatabase(kind: BenchDb): Promise<BenchDatabase> {
  const kek = generateKek();
  const kekHex = Buffer.from(kek).toString("hex");
  if (kind === "postgres") {
    const name = `chronokms_bench_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
    await adminQuery(`CREATE DATABASE "${name}"`);
    const url = new URL(POSTGRES_ADMIN_URL);
    url.pathname = `/${name}`;
    return {
      kind,
      env: { DATABASE_URL: url.toString() },
      target: { kind: "postgres", url: url.toString(), poolSize: 4 },
      kekHex,
      dispose: () => adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
    };
  }
  const dir = mkdtempSync(join(tmpdir(), "chronokms-bench-pglite-"));
  return {
    kind,
    env: { DATA_DIR: dir },
    target: { kind: "pglite", dataDir: join(dir, "pglite") },
    kekHex,
    dispose: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Opens the bench database in this process (migrated) with a KeyService on its KEK (creating v1 if none). */
export async function openForSeeding(
  bdb: BenchDatabase,
): Promise<{ db: Database; keys: ManagedKeyService; close(): Promise<void> }> {
  const db = await openDatabase(bdb.target);
  await applyMigrations(db);
  const kek = Uint8Array.from(Buffer.from(bdb.kekHex, "hex"));
  const keys = await createKeyService({
    db,
    kek,
    kekId: kekFingerprint(kek),
    sliceSeconds: BENCH_SLICE_SECONDS,
    log: createLogger("silent"),
  });
  return {
    db,
    keys,
    async close() {
      keys.close();
      await db.close();
    },
  };
}

/**
 * After a bulk load, before measuring: VACUUM ANALYZE (visibility map, statistics) and a
 * CHECKPOINT (the load's dirty pages written out now). Otherwise autovacuum and the checkpointer
 * catch up on the load during the first scenarios, and every group commit's fsync competes with
 * them: the first token-read figures after a seed then swung by ~2x on a slow disk, against
 * baselines measured later that write nothing. CHECKPOINT needs a superuser (the bench's default
 * URL is one); without it, it is skipped.
 */
export async function settleAfterLoad(db: Database): Promise<void> {
  await db.prisma.$executeRawUnsafe("VACUUM ANALYZE");
  await db.prisma.$executeRawUnsafe("CHECKPOINT").catch(() => {});
}

/** One INSERT … SELECT FROM unnest(arrays) per batch: a bulk load, not the per-request path. */
export function insertTokenRows(db: Database, integration: string, rows: SealedRow[]): Promise<unknown> {
  const sql = `INSERT INTO oauth_tokens (id, "userId", integration, "accessToken", "refreshToken", scope, "tokenType", "updatedAt", "keyVersion")
    SELECT u.id, u."userId", $1, u.a, u.r, 'email', 'Bearer', now(), u.v
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[]) AS u(id, "userId", a, r, v)`;
  const params = [
    integration,
    rows.map(() => Bun.randomUUIDv7()),
    rows.map((r) => r.userId),
    rows.map((r) => r.accessToken),
    rows.map((r) => r.refreshToken),
    rows.map((r) => r.keyVersion),
  ];
  if (db.pool) return db.pool.query(sql, params);
  if (db.pglite) return db.pglite.query(sql, params);
  throw new Error("insertTokenRows: no driver");
}

/** Kept for callers of the earlier worker-based seeding: nothing to close any more. */
export function closeSealWorkers(): void {}

/**
 * Seeds users `from`..`from+count-1` of `integration`: both fields sealed under the active key
 * version for row version 1 (as a first PUT would), no expiry, so a read never refreshes. Each
 * batch is inserted while the next is being sealed.
 */
export async function seedTokens(
  db: Database,
  keys: ManagedKeyService,
  opts: { integration: string; from?: number; count: number; batch?: number; onProgress?: (done: number) => void },
): Promise<{ rows: number; rowsPerSec: number }> {
  const from = opts.from ?? 0;
  const batch = opts.batch ?? 4000;
  const t0 = performance.now();
  let pending: Promise<unknown> = Promise.resolve();
  const end = from + opts.count;
  for (let start = from; start < end; start += batch) {
    const n = Math.min(batch, end - start);
    const rows: SealedRow[] = [];
    for (let i = start; i < start + n; i++) {
      const userId = benchUserId(i);
      const sealed = await sealTokens(
        keys,
        { integration: opts.integration, userId },
        { accessToken: benchAccessToken(i), refreshToken: benchRefreshToken(i) },
        1,
      );
      rows.push({
        userId,
        accessToken: sealed.accessToken,
        refreshToken: sealed.refreshToken!,
        keyVersion: sealed.keyVersion,
      });
    }
    await pending;
    pending = insertTokenRows(db, opts.integration, rows);
    opts.onProgress?.(start + n - from);
  }
  await pending;
  const s = (performance.now() - t0) / 1000;
  return { rows: opts.count, rowsPerSec: Math.round(opts.count / s) };
}
