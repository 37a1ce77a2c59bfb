/**
 * Every storage test runs on both databases: embedded PGlite (always) and PostgreSQL (when
 * reachable; each suite gets its own uniquely named database, dropped afterwards). CI sets
 * CHRONOKMS_REQUIRE_POSTGRES=1 so an unreachable server fails the run instead of skipping a leg.
 */
import { afterAll, beforeAll, describe, test } from "bun:test";
import pg from "pg";
import { PGlite } from "@electric-sql/pglite";
import { openDatabase, wrapPglite, type Database } from "../../src/db/database.ts";
import { applyMigrations } from "../../src/db/migrate.ts";

export type DbKind = "pglite" | "postgres";

export const postgresAdminUrl = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const requirePostgres = process.env.CHRONOKMS_REQUIRE_POSTGRES === "1";

async function postgresReachable(): Promise<boolean> {
  // Where PostgreSQL is required, a slow connect on a busy machine must not read as "unreachable".
  const client = new pg.Client({
    connectionString: postgresAdminUrl,
    connectionTimeoutMillis: requirePostgres ? 15_000 : 3000,
  });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export const postgresAvailable = await postgresReachable();
if (!postgresAvailable && requirePostgres) {
  throw new Error(`CHRONOKMS_REQUIRE_POSTGRES=1 but PostgreSQL is not reachable at ${postgresAdminUrl}`);
}
export const dbKinds: DbKind[] = postgresAvailable ? ["pglite", "postgres"] : ["pglite"];

// A fresh PGlite takes seconds to initialise; restoring a migrated template dump takes a fraction.
let template: Promise<Blob> | undefined;
function pgliteTemplate(): Promise<Blob> {
  template ??= (async () => {
    const db = await openDatabase({ kind: "pglite", dataDir: null });
    await applyMigrations(db);
    const dump = await db.pglite!.dumpDataDir("none");
    await db.close();
    return dump;
  })();
  return template;
}

export interface TestDatabase extends Database {
  /** For PostgreSQL, the URL of this test's own database (for a second process). */
  readonly url?: string;
}

export async function createTestDatabase(kind: DbKind, opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  if (kind === "pglite") {
    if (opts.migrate === false) return openDatabase({ kind: "pglite", dataDir: null });
    const pglite = new PGlite({ loadDataDir: await pgliteTemplate() });
    await pglite.waitReady;
    return wrapPglite(pglite, "pglite (test, in memory)");
  }
  const name = `chronokms_test_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  const url = new URL(postgresAdminUrl);
  url.pathname = `/${name}`;
  const db = await openDatabase({ kind: "postgres", url: url.toString() });
  if (opts.migrate !== false) await applyMigrations(db);
  return {
    ...db,
    url: url.toString(),
    async close() {
      await db.close();
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}

export async function createEmptyPostgresDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `chronokms_test_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  const url = new URL(postgresAdminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgresAdminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export interface DbHandle {
  readonly kind: DbKind;
  /** Available from beforeAll on. */
  db: TestDatabase;
}

/**
 * `describe` once per database, titled `[pglite] …` / `[postgres] …` (the test runner counts
 * tests per database from these prefixes). One database per suite, shared by its tests.
 */
export function describeEachDb(title: string, body: (h: DbHandle) => void) {
  for (const kind of dbKinds) {
    describe(`[${kind}] ${title}`, () => {
      const handle = { kind } as DbHandle;
      beforeAll(async () => {
        handle.db = await createTestDatabase(kind);
      }, 60_000);
      afterAll(async () => {
        await handle.db?.close();
      });
      body(handle);
    });
  }
}

/*
 * The one place that decides whether a PostgreSQL-only test runs: skipped when the server is not
 * reachable, an error at load time instead when CHRONOKMS_REQUIRE_POSTGRES=1 (CI). Every such test
 * goes through describePostgres, describeOnPostgres or testOnPostgres, never its own skipIf.
 */
const skipWithoutPostgres = !postgresAvailable;

/**
 * `describe` titled `[postgres] …` for a suite that opens its own PostgreSQL databases or
 * processes (createTestDatabase("postgres"), createEmptyPostgresDatabase()).
 */
export function describeOnPostgres(title: string, body: () => void) {
  describe.skipIf(skipWithoutPostgres)(`[postgres] ${title}`, body);
}

/** One `test` titled `[postgres] …` that opens its own PostgreSQL database; see describeOnPostgres. */
export function testOnPostgres(title: string, fn: () => Promise<void>, timeoutMs?: number) {
  test.skipIf(skipWithoutPostgres)(`[postgres] ${title}`, fn, timeoutMs);
}

/**
 * `describe` for what only PostgreSQL can show (a second connection that locks or kills), titled
 * `[postgres] …`; the same handle as describeEachDb. CI requires PostgreSQL, so it never skips there.
 */
export function describePostgres(title: string, body: (h: DbHandle) => void) {
  describeOnPostgres(title, () => {
    const handle = { kind: "postgres" } as DbHandle;
    beforeAll(async () => {
      handle.db = await createTestDatabase("postgres");
    }, 60_000);
    afterAll(async () => {
      await handle.db?.close();
    });
    body(handle);
  });
}
