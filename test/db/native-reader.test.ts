/**
 * The request path's point reads on PostgreSQL go through Bun's native client
 * (src/db/native-reader.ts): same rows as `pg`, errors shaped like `pg`'s (SQLSTATE in `code`),
 * a lost connection a 503 like any other, and no native client where the URL or environment
 * leaves room for it to reach the server differently from `pg`.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { NativeReader } from "../../src/db/native-reader.ts";
import { rawQuery, rawSelect } from "../../src/db/raw-query.ts";
import { isDatabaseUnavailable } from "../../src/db/unavailable.ts";
import { createTestDatabase, describeOnPostgres, type TestDatabase } from "../support/databases.ts";

test("a reader only for a URL that states host, user and database and carries no parameters", () => {
  const live: NativeReader[] = [];
  const make = (url: string) => {
    const r = NativeReader.forUrl(url, 10);
    if (r) live.push(r);
    return r !== undefined;
  };
  expect(make("postgres://app:secret@db.internal:5433/chronokms")).toBe(true);
  expect(make("postgresql://app@[::1]/chronokms")).toBe(true);
  expect(make("postgres://app@db.internal/chronokms?sslmode=require")).toBe(false);
  expect(make("postgres://db.internal/chronokms")).toBe(false); // user from the environment or the OS
  expect(make("postgres:///chronokms")).toBe(false); // Unix socket: pg's default directory
  expect(make("mysql://app@db.internal/chronokms")).toBe(false);
  const saved = process.env.PGSSLMODE;
  process.env.PGSSLMODE = "verify-full";
  try {
    expect(make("postgres://app@db.internal/chronokms")).toBe(false);
  } finally {
    if (saved === undefined) delete process.env.PGSSLMODE;
    else process.env.PGSSLMODE = saved;
  }
  for (const r of live) void r.close();
});

test("no reader where pg would reach another socket, port or database than the URL spells out", () => {
  const make = (url: string) => {
    const r = NativeReader.forUrl(url, 10);
    void r?.close();
    return r !== undefined;
  };
  // A '%' that escapes nothing (a password typed as is): pg takes it literally; no reader, and no throw.
  expect(make("postgres://app:50%off@db.internal/chronokms")).toBe(false);
  expect(make("postgres://app@db.internal/chron%zz")).toBe(false);
  // pg decodes the host to a Unix socket directory; Bun would look up "%2F…" as a host name.
  expect(make("postgres://app@%2Fvar%2Frun%2Fpostgresql/chronokms")).toBe(false);
  const withEnv = (key: string, value: string, check: () => void) => {
    const saved = process.env[key];
    process.env[key] = value;
    try {
      check();
    } finally {
      if (saved === undefined) delete process.env[key];
      else process.env[key] = saved;
    }
  };
  // pg takes a port or database the URL leaves out from PGPORT / PGDATABASE; Bun would not.
  withEnv("PGPORT", "5433", () => {
    expect(make("postgres://app@db.internal/chronokms")).toBe(false);
    expect(make("postgres://app@db.internal:5432/chronokms")).toBe(true);
  });
  withEnv("PGDATABASE", "other", () => {
    expect(make("postgres://app@db.internal/")).toBe(false);
    expect(make("postgres://app@db.internal/chronokms")).toBe(true);
  });
});

describeOnPostgres("a native reader the server refuses", () => {
  test("every read of a burst at start falls back to pg, not only the first", async () => {
    const reader = NativeReader.forUrl("postgres://no_such_role_h15@127.0.0.1:5432/postgres", 2)!;
    try {
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => reader.select("SELECT 1 AS x", [])));
      for (const r of results) expect(r).toEqual({ status: "fulfilled", value: undefined });
    } finally {
      await reader.close();
    }
  });
});

test("Bun's connection errors are 'unavailable'; its statement errors are not", () => {
  const bun = (code: string) => Object.assign(new Error("x"), { name: "PostgresError", code });
  expect(isDatabaseUnavailable(bun("ERR_POSTGRES_CONNECTION_CLOSED"))).toBe(true);
  expect(isDatabaseUnavailable(bun("ERR_POSTGRES_CONNECTION_TIMEOUT"))).toBe(true);
  expect(isDatabaseUnavailable(bun("ERR_POSTGRES_IDLE_TIMEOUT"))).toBe(true);
  expect(isDatabaseUnavailable(bun("ERR_POSTGRES_SERVER_ERROR"))).toBe(false);
});

describeOnPostgres("rawSelect on PostgreSQL", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase("postgres", { migrate: false });
  }, 60_000);
  afterAll(async () => {
    await db?.close();
  });

  test("goes through the native reader and returns what pg returns for the same statement", async () => {
    expect(db.reader).toBeDefined();
    const text = `SELECT $1::text AS s, $2::int AS i, NULL::text AS n, '2026-01-02T03:04:05.678Z'::timestamptz(3) AS t,
      ARRAY['reader','admin']::text[] AS roles, '{"kty":"EC","x":"a"}'::jsonb AS j, true AS b, gen_random_uuid()::text AS u`;
    const [viaReader] = await rawSelect<Record<string, unknown>>(db, "h9_test_select", text, ["x", 3]);
    const [viaPg] = await rawQuery<Record<string, unknown>>(db, "h9_test_select", text, ["x", 3]);
    expect(typeof viaReader!.u).toBe("string");
    expect({ ...viaReader, u: null }).toEqual({ ...viaPg, u: null });
    expect(viaReader!.t).toBeInstanceOf(Date);
  });

  test("a selected column's type changed by a migration meanwhile: the reads go on answering", async () => {
    await db.pool!.query(
      "CREATE TABLE native_stale (id text PRIMARY KEY, scope text); INSERT INTO native_stale VALUES ('a', 's')",
    );
    const read = () =>
      rawSelect<{ scope: string }>(db, "native_stale", "SELECT scope FROM native_stale WHERE id = $1", ["a"]);
    // Prepared on every connection the reader may use, then made stale.
    await Promise.all(Array.from({ length: 12 }, read));
    await db.pool!.query("ALTER TABLE native_stale ALTER COLUMN scope TYPE varchar(4000)");
    for (const [row] of await Promise.all(Array.from({ length: 12 }, read))) expect(row?.scope).toBe("s");
    expect((await read())[0]?.scope).toBe("s");
  });

  test("a statement error carries its SQLSTATE in code, like pg's", async () => {
    const err = await rawSelect(db, "h9_test_fail", "SELECT 1 / $1::int AS x", [0]).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe("22012");
    expect(isDatabaseUnavailable(err)).toBe(false);
  });
});
