/**
 * The embedded owner's row cache must stay useful while being conservative: every statement of an
 * ordinary token read through HTTP (the decision's audit and access-request rows included) leaves
 * it alone, so a second read of the same token runs no SELECT of the row. A statement on that path
 * that the cache's guard (src/tokens/row-cache-guard.ts) cannot tell from a write — several
 * statements in one string, DDL, a function of ours in the schema — turns this test red.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { watchStatements } from "../../src/db/statement-watch.ts";
import { createTestDatabase, type TestDatabase } from "../support/databases.ts";
import { tokenTestApp, type TokenTestApp } from "./helpers.ts";

describe("[pglite] token reads through HTTP on the embedded owner", () => {
  let db: TestDatabase;
  let t: TokenTestApp;
  beforeAll(async () => {
    db = await createTestDatabase("pglite");
    t = await tokenTestApp(db);
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await db?.close();
  });

  test("a second read of a token is a row-cache hit", async () => {
    expect((await t.call(t.writer, "PUT", "/v1/tokens/gmail/hit-user", { accessToken: "secret-hit" })).status).toBe(
      201,
    );
    expect((await t.call(t.reader, "GET", "/v1/tokens/gmail/hit-user")).status).toBe(200);
    const rowReads: string[] = [];
    const stop = watchStatements(db.pglite!, (sql) => {
      if (sql?.includes('FROM oauth_tokens WHERE "userId" = $1 AND integration = $2')) rowReads.push(sql);
    });
    try {
      for (let i = 0; i < 3; i++) expect((await t.call(t.reader, "GET", "/v1/tokens/gmail/hit-user")).status).toBe(200);
    } finally {
      stop();
    }
    expect(rowReads).toEqual([]);
  });
});
