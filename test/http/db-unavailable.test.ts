/**
 * Regression (found by the reliability suite's database-fault test): a query that loses its
 * connection (pg_terminate_backend) outside the audit writer was a generic 500; it must be a 503
 * in the single error shape, and the service must answer normally right after.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import pg from "pg";
import { isDatabaseUnavailable } from "../../src/db/unavailable.ts";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../support/databases.ts";
import { tokenTestApp, type TokenTestApp } from "../tokens/helpers.ts";

describe("isDatabaseUnavailable", () => {
  test("recognises lost connections, timeouts and pool exhaustion, not query errors", () => {
    const adapter = (code: string) =>
      Object.assign(new Error("Database error"), {
        code: "P2039",
        meta: { driverAdapterError: { cause: { originalCode: code } } },
      });
    expect(isDatabaseUnavailable(adapter("57P01"))).toBe(true);
    expect(isDatabaseUnavailable(adapter("08006"))).toBe(true);
    expect(isDatabaseUnavailable(adapter("55P03"))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error("x"), { code: "P2024" }))).toBe(true);
    expect(
      isDatabaseUnavailable(
        new Error("outer", { cause: Object.assign(new Error("connect"), { code: "ECONNREFUSED" }) }),
      ),
    ).toBe(true);
    expect(isDatabaseUnavailable(new Error("Client has encountered a connection error and is not queryable"))).toBe(
      true,
    );
    expect(isDatabaseUnavailable(adapter("23505"))).toBe(false); // unique violation: a real error
    expect(isDatabaseUnavailable(adapter("42P01"))).toBe(false);
    expect(isDatabaseUnavailable(new TypeError("undefined is not a function"))).toBe(false);
    expect(isDatabaseUnavailable(undefined)).toBe(false);
  });
});

describeOnPostgres("a query whose connection is terminated", () => {
  let db: TestDatabase;
  let t: TokenTestApp;
  let admin: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    t = await tokenTestApp(db);
    admin = new pg.Client({ connectionString: db.url });
    // The suite's database is dropped WITH (FORCE) when it ends, which may kill this connection first.
    admin.on("error", () => {});
    await admin.connect();
  }, 60_000);
  afterAll(async () => {
    await admin?.end();
    await t?.close();
    await db?.close();
  });

  test("is a 503 in the error shape (not a 500), and the next request succeeds", async () => {
    expect((await t.call(t.writer, "PUT", "/v1/tokens/gmail/u1", { accessToken: "secret-value-1" })).status).toBe(201);
    // Park the status query (no audit write) behind a lock, then kill the backend that waits.
    await admin.query("BEGIN");
    await admin.query("LOCK TABLE oauth_tokens IN ACCESS EXCLUSIVE MODE");
    const pending = t.call(t.reader, "GET", "/v1/tokens/gmail/u1/status");
    let waiting: number[] = [];
    for (let i = 0; i < 100 && waiting.length === 0; i++) {
      await Bun.sleep(20);
      waiting = (
        await admin.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
        )
      ).rows.map((r) => r.pid);
    }
    expect(waiting.length).toBeGreaterThan(0);
    for (const pid of waiting) await admin.query("SELECT pg_terminate_backend($1)", [pid]);
    const res = await pending;
    await admin.query("ROLLBACK");
    const text = await res.text();
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    const body = JSON.parse(text) as { error: { code: string; message: string } };
    expect(Object.keys(body)).toEqual(["error"]);
    expect(body.error.code).toBe("SERVICE_UNAVAILABLE");
    expect(text).not.toContain("57P01");
    expect(text).not.toContain("oauth_tokens");
    expect((await t.call(t.reader, "GET", "/v1/tokens/gmail/u1/status")).status).toBe(200);
  }, 30_000);
});
