/**
 * Multi-row writers of oauth_tokens and row locks.
 *
 * Clearing a user's tokens must take every row, so it waits for them, in id order (its index scan's
 * order could deadlock with another id-ordered waiter). A second session holds the lowest id, the writer under test starts, then
 * the session asks for the other rows in id order (what an id-ordered writer does): it must get
 * them at once, and the writer must then finish. Out of order, the writer holds some of them while
 * it waits, and the session waits for the deadlock detector (1 s), which aborts one side.
 *
 * Not every writer can lock in id order: an audit batch runs its changes in the order they came
 * (two token PUTs lock the second row first if it came first). So the background writers — the
 * rotation's re-seal, the lastUsed flush, the expired-token cleanup — never wait for a row lock at
 * all: they skip a row someone holds and take it on a later pass. The session holds a higher id,
 * the writer starts, then the session asks for a lower one, as such a batch does. And a batch the
 * database does abort to break such a deadlock runs again: it committed nothing.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import pg from "pg";
import { openDatabase, type Database } from "../../src/db/database.ts";
import { createTestDatabase, describeOnPostgres, type TestDatabase } from "../support/databases.ts";
import { cleanupExpiredTokens } from "../../src/tokens/cleanup.ts";
import { runRewrap } from "../../src/keys/rewrap.ts";
import { LastUsedTracker } from "../../src/tokens/last-used.ts";
import { tokenRepository } from "../../src/tokens/repository.ts";
import { createLogger } from "../../src/log.ts";
import { tokenTestApp, type TokenTestApp } from "./helpers.ts";

/**
 * Holds `first` in a second session and runs `writer`; once the writer waits for that session, or
 * has got as far as it can without waiting (`settled`), takes `rest` in id order. How long that
 * took, and the writer's result.
 */
async function rivalSession(
  url: string,
  first: string,
  rest: string[],
  writer: () => Promise<unknown>,
  settled: () => Promise<boolean> = async () => false,
) {
  const other = new pg.Client({ connectionString: url });
  await other.connect();
  try {
    await other.query("BEGIN");
    await other.query("SET LOCAL lock_timeout = '3s'");
    await other.query("SELECT 1 FROM oauth_tokens WHERE id = $1 FOR UPDATE", [first]);
    let done = false;
    const running = writer().finally(() => (done = true));
    running.catch(() => {});
    for (const until = performance.now() + 5_000; !done && performance.now() < until; await Bun.sleep(20)) {
      const { rows } = await other.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pg_backend_pid() = ANY(pg_blocking_pids(pid))",
      );
      if (rows[0].n > 0 || (await settled())) break;
    }
    const t0 = performance.now();
    await other.query("SELECT 1 FROM oauth_tokens WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", [rest]);
    const waited = performance.now() - t0;
    await other.query("COMMIT");
    return { waited, result: await running };
  } finally {
    await other.query("ROLLBACK").catch(() => {});
    await other.end();
  }
}

describeOnPostgres("multi-row writers of oauth_tokens and row locks", () => {
  let base: TestDatabase;
  let db: Database;
  let a: TokenTestApp;
  beforeAll(async () => {
    base = await createTestDatabase("postgres");
    const name = new URL(base.url!).pathname.slice(1);
    await base.prisma.$executeRawUnsafe(`ALTER DATABASE "${name}" SET enable_seqscan = off`);
    await base.prisma.$executeRawUnsafe(`ALTER DATABASE "${name}" SET enable_bitmapscan = off`);
    // A pool opened after the settings, so every session of the app plans with them.
    db = await openDatabase({ kind: "postgres", url: base.url!, poolSize: 4 });
    a = await tokenTestApp(db);
  }, 60_000);
  afterAll(async () => {
    await a?.close();
    await db?.close();
    await base?.close();
  });

  /** Two stored tokens of `userId`, their ids ascending. */
  async function twoTokens(userId: string): Promise<string[]> {
    for (const integration of ["one", "two"]) {
      const res = await a.call(a.writer, "PUT", `/v1/tokens/${integration}/${userId}`, {
        accessToken: `tok-${integration}`,
      });
      expect(res.status).toBe(201);
    }
    const rows = await db.prisma.oAuthToken.findMany({
      where: { userId },
      orderBy: { id: "asc" },
      select: { id: true },
    });
    return rows.map((r) => r.id);
  }

  test("clearing a user's tokens (index order: integration, here the reverse of id order)", async () => {
    const put = (integration: string) =>
      a.call(a.writer, "PUT", `/v1/tokens/${integration}/lock-order`, { accessToken: `tok-${integration}` });
    expect((await put("zzz")).status).toBe(201); // lower id (ids are time-ordered)
    expect((await put("aaa")).status).toBe(201); // higher id, first in (userId, integration) order
    const ids = (
      await db.prisma.oAuthToken.findMany({
        where: { userId: "lock-order" },
        orderBy: { id: "asc" },
        select: { id: true },
      })
    ).map((r) => r.id);
    expect(ids).toHaveLength(2);
    const { waited, result } = await rivalSession(base.url!, ids[0]!, ids.slice(1), () =>
      a.call(a.writer, "DELETE", "/v1/users/lock-order/tokens"),
    );
    expect(waited).toBeLessThan(500);
    const res = result as Response;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { deleted: number }).deleted).toBe(2);
  }, 30_000);

  test("the rotation's re-seal skips a row a writer holds instead of waiting (a batch locking out of id order)", async () => {
    const ids = await twoTokens("reseal-order");
    const keys = a.t.runtime.keys;
    await keys.rotate();
    const active = (await keys.active()).version;
    const lowerMoved = async () =>
      (await db.prisma.oAuthToken.findUnique({ where: { id: ids[0]! } }))?.keyVersion === active;
    const { waited, result } = await rivalSession(
      base.url!,
      ids[1]!,
      [ids[0]!],
      () => runRewrap(keys, keys.rewrappables(), { batchSize: 10 }),
      lowerMoved,
    );
    expect(waited).toBeLessThan(500);
    // The held row moved on a later pass, once the session let it go.
    expect(result).toMatchObject({ remaining: 0, failed: [] });
    const rows = await db.prisma.oAuthToken.findMany({ where: { id: { in: ids } }, select: { keyVersion: true } });
    expect(rows.map((r) => r.keyVersion)).toEqual([active, active]);
  }, 30_000);

  test("a row the re-seal skipped because a writer held it is not reported done, even if no count names it", async () => {
    // Pending by its bookkeeping only (the spelling its ciphertexts name, kept by a migration), on
    // the active version: the per-version counts do not see it, only the pass that meets it does.
    const [id] = await twoTokens("held-ctx");
    await db.prisma.$executeRawUnsafe(`UPDATE oauth_tokens SET "integrationCtx" = 'one' WHERE id = $1::uuid`, id);
    const keys = a.t.runtime.keys;
    const started = performance.now();
    const { result } = await rivalSession(
      base.url!,
      id!,
      [],
      () => runRewrap(keys, keys.rewrappables(), { batchSize: 10 }),
      async () => performance.now() - started > 200,
    );
    const row = await db.prisma.oAuthToken.findUniqueOrThrow({ where: { id: id! } });
    expect({ remaining: (result as { remaining: number }).remaining, integrationCtx: row.integrationCtx }).toEqual({
      remaining: 0,
      integrationCtx: null,
    });
  }, 30_000);

  test("an audit batch whose change PostgreSQL aborts as a deadlock runs again instead of failing its callers", async () => {
    // Two token writes in one batch lock their rows in arrival order; a session taking the same
    // rows in the other order makes PostgreSQL abort one side after deadlock_timeout. Aborted
    // means nothing of the batch committed, so it can simply run again.
    const [low, high] = await twoTokens("audit-deadlock");
    let runs = 0;
    const { waited, result } = await rivalSession(base.url!, high!, [low!], () =>
      a.t.runtime.audit.apply({
        change: async (tx) => {
          runs++;
          await tx.$queryRawUnsafe(`SELECT 1 FROM oauth_tokens WHERE id = $1::uuid FOR UPDATE`, low);
          await tx.$queryRawUnsafe(`SELECT 1 FROM oauth_tokens WHERE id = $1::uuid FOR UPDATE`, high);
          return "both";
        },
        event: () => ({ eventType: "TOKEN_STORED", actor: "test", target: "token:one:audit-deadlock", success: true }),
      }),
    );
    expect(waited).toBeGreaterThan(500); // the deadlock did happen: the session waited for the detector
    expect(result).toBe("both");
    expect(runs).toBe(2);
  }, 30_000);

  test("the lastUsed flush skips a row a writer holds instead of waiting, and writes it with the next flush", async () => {
    const ids = await twoTokens("flush-order");
    const tracker = new LastUsedTracker(db, createLogger("silent"), { flushMs: 3_600_000 });
    const at = Date.parse("2031-01-01T00:00:00Z");
    for (const id of ids) tracker.touch(id, at);
    const { waited } = await rivalSession(base.url!, ids[1]!, [ids[0]!], () => tracker.flush());
    expect(waited).toBeLessThan(500);
    await tracker.close(); // the next flush
    const rows = await db.prisma.oAuthToken.findMany({ where: { id: { in: ids } }, select: { lastUsed: true } });
    expect(rows.map((r) => r.lastUsed?.getTime())).toEqual([at, at]);
  }, 30_000);

  test("the lastUsed flush drops the time of a row deleted since it was read, instead of keeping it forever", async () => {
    const ids = await twoTokens("flush-deleted");
    await db.prisma.oAuthToken.delete({ where: { id: ids[0]! } });
    const at = new Date("2031-01-01T00:00:00Z");
    const held = await tokenRepository(db).flushLastUsed(new Map(ids.map((id) => [id, at])));
    expect(held).toEqual([]);
    expect((await db.prisma.oAuthToken.findUniqueOrThrow({ where: { id: ids[1]! } })).lastUsed).toEqual(at);
  });

  test("the expired-token cleanup skips a row a writer holds instead of waiting; the next run deletes it", async () => {
    // 60 expired rows: the session holds the highest id, then asks for the lowest.
    const long = new Date(Date.now() - 400 * 86_400_000);
    await db.prisma.oAuthToken.createMany({
      data: Array.from({ length: 60 }, (_, i) => ({
        userId: `expired-${i}`,
        integration: "gmail",
        accessToken: "x",
        keyVersion: 1,
        expiresAt: long,
      })),
    });
    const ids = (
      await db.prisma.oAuthToken.findMany({
        where: { userId: { startsWith: "expired-" } },
        orderBy: { id: "asc" },
        select: { id: true },
      })
    ).map((r) => r.id);
    const deps = { db, audit: a.t.runtime.audit, clock: { now: () => Date.now() } };
    const run = () => cleanupExpiredTokens(deps, { olderThanMs: 30 * 86_400_000, dryRun: false });
    const { waited, result } = await rivalSession(base.url!, ids.at(-1)!, [ids[0]!], run);
    expect(waited).toBeLessThan(500);
    expect((result as { count: number }).count).toBe(59);
    expect(((await run()) as { count: number }).count).toBe(1);
  }, 30_000);
});
