/**
 * Multi-row writers of oauth_tokens lock their rows in id order (the rewrap's write-back and the
 * lastUsed flush do): clearing a user's tokens and the expired-token cleanup must too, or they
 * deadlock with them. A second session holds the lowest id, the writer under test starts, then
 * the session asks for the other rows in id order (what an id-ordered writer does): it must get
 * them at once, and the writer must then finish. Out of order, the writer holds some of them while
 * it waits, and the session waits for the deadlock detector (1 s), which aborts one side.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import pg from "pg";
import { openDatabase, type Database } from "../../src/db/database.ts";
import { createTestDatabase, describeOnPostgres, type TestDatabase } from "../support/databases.ts";
import { cleanupExpiredTokens } from "../../src/tokens/cleanup.ts";
import { tokenTestApp, type TokenTestApp } from "./helpers.ts";

/** Holds `first` in a second session, runs `writer`, then takes `rest` in id order; how long that waited. */
async function idOrderedRival(url: string, first: string, rest: string[], writer: () => Promise<unknown>) {
  const other = new pg.Client({ connectionString: url });
  await other.connect();
  try {
    await other.query("BEGIN");
    await other.query("SET LOCAL lock_timeout = '3s'");
    await other.query("SELECT 1 FROM oauth_tokens WHERE id = $1 FOR UPDATE", [first]);
    const running = writer();
    running.catch(() => {});
    await Bun.sleep(300); // the writer is now waiting for `first`
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

describeOnPostgres("multi-row deletes of oauth_tokens lock in id order", () => {
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
    const { waited, result } = await idOrderedRival(base.url!, ids[0]!, ids.slice(1), () =>
      a.call(a.writer, "DELETE", "/v1/users/lock-order/tokens"),
    );
    expect(waited).toBeLessThan(500);
    const res = result as Response;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { deleted: number }).deleted).toBe(2);
  }, 30_000);

  test("the expired-token cleanup (its batch's ids go through a hash: any order)", async () => {
    // 60 expired rows: out of order, the lowest id comes first only by a 1-in-60 chance.
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
    const { waited, result } = await idOrderedRival(base.url!, ids[0]!, ids.slice(1), () =>
      cleanupExpiredTokens(deps, { olderThanMs: 30 * 86_400_000, dryRun: false }),
    );
    expect(waited).toBeLessThan(500);
    expect((result as { count: number }).count).toBe(60);
  }, 30_000);
});
