/**
 * Multi-row writers of oauth_tokens lock their rows in id order (the rewrap's write-back and the
 * lastUsed flush do): clearing a user's tokens must too, or it deadlocks with them. The planner is
 * held to index scans, which visit a user's rows in (userId, integration) order; here that is the
 * reverse of id order. A second session that holds the lower id and then asks for the higher one
 * (what an id-ordered writer does) must get it at once, and the clear must then succeed.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import pg from "pg";
import { openDatabase, type Database } from "../../src/db/database.ts";
import { createTestDatabase, describeOnPostgres, type TestDatabase } from "../support/databases.ts";
import { tokenTestApp, type TokenTestApp } from "./helpers.ts";

describeOnPostgres("clearing a user's tokens locks in id order", () => {
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

  test("a writer holding the lower id gets the higher one at once; the clear then deletes both", async () => {
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

    const other = new pg.Client({ connectionString: base.url });
    await other.connect();
    try {
      await other.query("BEGIN");
      await other.query("SET LOCAL lock_timeout = '2s'");
      await other.query(`SELECT 1 FROM oauth_tokens WHERE id = $1 FOR UPDATE`, [ids[0]]);
      const cleared = a.call(a.writer, "DELETE", "/v1/users/lock-order/tokens");
      await Bun.sleep(300); // the clear is now waiting for the lower id
      const t0 = performance.now();
      await other.query(`SELECT 1 FROM oauth_tokens WHERE id = $1 FOR UPDATE`, [ids[1]]);
      const waited = performance.now() - t0;
      await other.query("COMMIT");
      // Out of order, the clear would hold the higher id while it waits: this waits for the
      // deadlock detector (1 s), which aborts one side.
      expect(waited).toBeLessThan(500);
      const res = await cleared;
      expect(res.status).toBe(200);
      expect(((await res.json()) as { deleted: number }).deleted).toBe(2);
    } finally {
      await other.query("ROLLBACK").catch(() => {});
      await other.end();
    }
  }, 30_000);
});
