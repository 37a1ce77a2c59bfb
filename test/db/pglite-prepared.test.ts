/**
 * Hot statements on the embedded database as named prepared statements sent in one pass
 * (src/db/pglite-prepared.ts): the same rows as PGlite's own `query`, seen by the statement
 * watchers, and still right when the session's statement was dropped, redefined or made stale
 * behind its back (a migration, DEALLOCATE/PREPARE in this process, an owner-socket client).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PGlite, protocol } from "@electric-sql/pglite";
import { pglitePrepared } from "../../src/db/pglite-prepared.ts";
import { announceStatement, watchStatements } from "../../src/db/statement-watch.ts";

describe("[pglite] prepared statements in one pass", () => {
  let pg: PGlite;
  beforeAll(async () => {
    pg = new PGlite();
    await pg.waitReady;
    await pg.exec(`CREATE TABLE t (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), k text UNIQUE, n int, at timestamptz,
      big int8, tags text[]);
      INSERT INTO t (k, n, at, big, tags) VALUES ('a', 1, '2026-01-02T03:04:05.678Z', 9007199254740993, '{x,"y z"}'),
        ('b', NULL, NULL, NULL, NULL)`);
  });
  afterAll(async () => {
    await pg.close();
  });

  const SELECT = "SELECT id::text AS id, k, n, at, big, tags FROM t WHERE k = $1";

  test("rows as PGlite's own query gives them (types, nulls), run after run", async () => {
    for (const k of ["a", "b", "a", "missing"]) {
      expect(await pglitePrepared(pg, "p_select", SELECT, [k])).toEqual((await pg.query(SELECT, [k])).rows);
    }
    expect(await pglitePrepared(pg, "p_null", "SELECT $1::text IS NULL AS isnull", [null])).toEqual([{ isnull: true }]);
  });

  test("the statement watchers see it before and after it runs", async () => {
    const seen: Array<string | null> = [];
    const stop = watchStatements(pg, (sql) => seen.push(sql));
    try {
      await pglitePrepared(pg, "p_select", SELECT, ["a"]);
    } finally {
      stop();
    }
    expect(seen).toEqual([SELECT, SELECT]);
  });

  test("an error leaves the session usable (its implicit transaction rolled back), and the name works again", async () => {
    const insert = "INSERT INTO t (k, n) VALUES ($1, 5)";
    await pglitePrepared(pg, "p_insert", insert, ["c"]);
    await expect(pglitePrepared(pg, "p_insert", insert, ["c"])).rejects.toMatchObject({ code: "23505" });
    await pglitePrepared(pg, "p_insert", insert, ["d"]);
    expect((await pg.query("SELECT k FROM t WHERE n = 5 ORDER BY k")).rows).toEqual([{ k: "c" }, { k: "d" }]);
    expect((await pg.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_prepared_statements")).rows[0]!.n).toBe(3);
  });

  test("dropped or redefined in the session (in this process, or by an owner-socket client), it is parsed afresh", async () => {
    await pglitePrepared(pg, "p_select", SELECT, ["a"]);
    await pg.exec("DEALLOCATE p_select");
    expect((await pglitePrepared<{ k: string }>(pg, "p_select", SELECT, ["a"]))[0]?.k).toBe("a");
    await pg.exec("DEALLOCATE p_select; PREPARE p_select(text) AS SELECT 'forged' AS k");
    expect((await pglitePrepared<{ k: string }>(pg, "p_select", SELECT, ["b"]))[0]?.k).toBe("b");
    // An owner-socket client's messages reach PGlite directly and are announced as null (SQL unknown).
    announceStatement(pg, null);
    await pg.execProtocolRaw(
      protocol.serialize.query("DEALLOCATE p_select; PREPARE p_select(text) AS SELECT 'forged' AS k"),
    );
    announceStatement(pg, null);
    expect((await pglitePrepared<{ k: string }>(pg, "p_select", SELECT, ["a"]))[0]?.k).toBe("a");
  });

  test("a migration that changes a selected column's type: re-parsed once, the new type returned", async () => {
    const sel = "SELECT n FROM t WHERE k = $1";
    expect(await pglitePrepared(pg, "p_n", sel, ["a"])).toEqual([{ n: 1 }]);
    await pg.exec("ALTER TABLE t ALTER COLUMN n TYPE text");
    expect(await pglitePrepared(pg, "p_n", sel, ["a"])).toEqual([{ n: "1" }]);
  });
});
