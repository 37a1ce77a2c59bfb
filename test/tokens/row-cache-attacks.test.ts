/**
 * The embedded owner's token row cache (src/tokens/row-cache.ts) from an attacker's side: writes
 * to oauth_tokens that do not look like "a statement naming oauth_tokens" must still be seen by
 * the next read — upper-case or Unicode-escaped names, several statements in one string, a
 * borrowed lastUsed marker, and writes made by the database itself (a trigger or a rule on
 * another table, a function called from a SELECT, a cascading foreign key). On PostgreSQL (no
 * cache) the same statements pin the raw read to the database's truth.
 */
import { describe, expect, test } from "bun:test";
import type { Database } from "../../src/db/database.ts";
import type { TokenRow } from "../../src/tokens/record.ts";
import { tokenRepository } from "../../src/tokens/repository.ts";
import { TOKEN_ROW_CACHE_MAX_BYTES, TokenRowCache } from "../../src/tokens/row-cache.ts";
import { LAST_USED_SQL, statementEffect } from "../../src/tokens/row-cache-guard.ts";
import { describeEachDb } from "../support/databases.ts";

async function insertRow(db: Database, userId: string) {
  return db.prisma.oAuthToken.create({
    data: { userId, integration: "gmail", accessToken: `tok:1.access-${userId}`, keyVersion: 1, scope: "before" },
  });
}

/** A script as a maintenance script or a migration would send it (several statements, no parameters). */
async function script(db: Database, sql: string): Promise<void> {
  if (db.pglite && !db.pool) await db.pglite.exec(sql);
  else await db.pool!.query(sql);
}

describeEachDb("token row cache under writes it cannot name", (h) => {
  /** Caches the row, runs `write`, and expects the next read to see what the database holds. */
  async function seen(userId: string, write: () => Promise<unknown>, expected: string | null) {
    await insertRow(h.db, userId);
    const repo = tokenRepository(h.db);
    const key = { userId, integration: "gmail" };
    expect((await repo.byKey(key))?.scope).toBe("before");
    expect((await repo.byKey(key))?.scope).toBe("before"); // a hit on the embedded owner
    await write();
    const truth = await h.db.prisma.oAuthToken.findUnique({ where: { userId_integration: key } });
    expect(truth?.scope ?? null).toBe(expected);
    expect((await repo.byKey(key))?.scope ?? null).toBe(expected);
  }

  test("an upper-case or Unicode-escaped table name", async () => {
    await seen(
      "atk-upper",
      () => h.db.prisma.$executeRawUnsafe(`UPDATE OAUTH_TOKENS SET scope = 'upper' WHERE "userId" = 'atk-upper'`),
      "upper",
    );
    await seen(
      "atk-uescape",
      () =>
        h.db.prisma.$executeRawUnsafe(
          `UPDATE U&"oauth\\005ftokens" SET scope = 'escaped' WHERE "userId" = 'atk-uescape'`,
        ),
      "escaped",
    );
  });

  test("a write after a SELECT in one string, and a write borrowing the lastUsed flush's marker", async () => {
    await seen(
      "atk-multi",
      () => script(h.db, `SELECT 1; UPDATE oauth_tokens SET scope = 'multi' WHERE "userId" = 'atk-multi'`),
      "multi",
    );
    await seen(
      "atk-marker",
      () =>
        h.db.prisma.$executeRawUnsafe(
          `/* chronokms:last-used */ UPDATE oauth_tokens SET scope = 'marker' WHERE "userId" = 'atk-marker'`,
        ),
      "marker",
    );
  });

  test("a trigger or a rule on another table, and a function called from a SELECT, that write oauth_tokens", async () => {
    await script(
      h.db,
      `CREATE TABLE atk_side (n int);
       CREATE FUNCTION atk_touch() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN UPDATE oauth_tokens SET scope = 'trigger' WHERE "userId" = 'atk-trigger'; RETURN NEW; END $$;
       CREATE TRIGGER atk_side_touch AFTER INSERT ON atk_side FOR EACH ROW EXECUTE FUNCTION atk_touch();
       CREATE FUNCTION atk_fn() RETURNS int LANGUAGE sql AS
         $$ UPDATE oauth_tokens SET scope = 'function' WHERE "userId" = 'atk-function' RETURNING 1 $$;
       CREATE TABLE atk_ruled (n int);
       CREATE RULE atk_rule AS ON INSERT TO atk_ruled
         DO ALSO UPDATE oauth_tokens SET scope = 'rule' WHERE "userId" = 'atk-rule';`,
    );
    try {
      await seen("atk-trigger", () => h.db.prisma.$executeRawUnsafe("INSERT INTO atk_side VALUES (1)"), "trigger");
      await seen("atk-function", () => h.db.prisma.$queryRawUnsafe("SELECT atk_fn()"), "function");
      await seen("atk-rule", () => h.db.prisma.$executeRawUnsafe("INSERT INTO atk_ruled VALUES (1)"), "rule");
    } finally {
      await script(h.db, "DROP TABLE atk_side, atk_ruled; DROP FUNCTION atk_touch(), atk_fn();");
    }
  });

  test("a delete cascading from another table through a foreign key", async () => {
    await script(
      h.db,
      `CREATE TABLE atk_parent (uid text PRIMARY KEY);
       INSERT INTO atk_parent VALUES ('atk-cascade');
       ALTER TABLE oauth_tokens ADD CONSTRAINT atk_fk FOREIGN KEY ("userId") REFERENCES atk_parent (uid)
         ON DELETE CASCADE NOT VALID;`,
    );
    try {
      await seen("atk-cascade", () => h.db.prisma.$executeRawUnsafe("DELETE FROM atk_parent"), null);
    } finally {
      await script(h.db, "ALTER TABLE oauth_tokens DROP CONSTRAINT atk_fk; DROP TABLE atk_parent;");
    }
  });

  test("an update of another table that oauth_tokens was made to inherit from", async () => {
    await script(
      h.db,
      `CREATE TABLE atk_inh_parent ("userId" text, scope text);
       ALTER TABLE oauth_tokens INHERIT atk_inh_parent;`,
    );
    try {
      await seen(
        "atk-inherit",
        () =>
          h.db.prisma.$executeRawUnsafe(`UPDATE atk_inh_parent SET scope = 'inherited' WHERE "userId" = 'atk-inherit'`),
        "inherited",
      );
    } finally {
      await script(h.db, "ALTER TABLE oauth_tokens NO INHERIT atk_inh_parent; DROP TABLE atk_inh_parent;");
    }
  });

  test("a write in a transaction that rolls back, with a read racing it, leaves what is committed", async () => {
    await insertRow(h.db, "atk-rollback");
    const repo = tokenRepository(h.db);
    const key = { userId: "atk-rollback", integration: "gmail" };
    expect((await repo.byKey(key))?.scope).toBe("before");
    let racing: Promise<unknown> | undefined;
    const rolledBack = await h.db.prisma
      .$transaction(async (tx) => {
        await tx.$executeRaw`UPDATE oauth_tokens SET scope = 'uncommitted' WHERE "userId" = 'atk-rollback'`;
        racing = repo.byKey(key); // outside the transaction, while it is open
        await Bun.sleep(30);
        throw new Error("roll back");
      })
      .catch((err: Error) => err.message);
    expect(rolledBack).toBe("roll back");
    expect(((await racing) as { scope: string } | null)?.scope).toBe("before");
    expect((await repo.byKey(key))?.scope).toBe("before");
  });

  test("once the database holds no such object again, rows are cached again", async () => {
    await insertRow(h.db, "atk-after");
    const repo = tokenRepository(h.db);
    const key = { userId: "atk-after", integration: "gmail" };
    const first = await repo.byKey(key);
    if (h.kind === "pglite") expect(await repo.byKey(key)).toBe(first);
    else expect(await repo.byKey(key)).toEqual(first!);
  });
});

describe("token row cache memory", () => {
  test("bounded in bytes, not only in rows: a writer storing maximum-size tokens cannot grow it without limit", () => {
    const cache = new TokenRowCache();
    // Stored envelopes of two 8 KiB tokens are ~24 KiB; 20 000 such rows would be ~0.5 GB.
    const big = "x".repeat(32 * 1024);
    const rowOf = (i: number) =>
      ({ id: `r${i}`, userId: `u${i}`, integration: "gmail", accessToken: big, refreshToken: big }) as TokenRow;
    for (let i = 0; i < 4_000; i++) cache.fill(cache.generation(), rowOf(i));
    let held = 0;
    for (let i = 0; i < 4_000; i++) if (cache.get(`u${i}`, "gmail")) held++;
    expect(held * 2 * big.length).toBeLessThanOrEqual(TOKEN_ROW_CACHE_MAX_BYTES);
    expect(held).toBeGreaterThan(0);
    expect(cache.get("u3999", "gmail")).toBeDefined(); // the newest stay, the oldest go
    expect(cache.get("u0", "gmail")).toBeUndefined();
  });
});

describe("statement classification (src/tokens/row-cache-guard.ts)", () => {
  test("never lets a statement that may write oauth_tokens pass as harmless", () => {
    const writes = [
      `UPDATE "public"."oauth_tokens" SET "scope" = $1 WHERE "id" = $2`, // Prisma's
      `update public.oauth_tokens set scope = 'x'`,
      `UPDATE OAuth_Tokens SET scope = 'x'`,
      `WITH gone AS (DELETE FROM oauth_tokens RETURNING id) SELECT count(*) FROM gone`,
      `INSERT INTO oauth_tokens (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET scope = 'x'`,
      `DELETE /* note */ FROM /* more */ "oauth_tokens"`,
      `-- chronokms:last-used\nUPDATE oauth_tokens SET "lastUsed" = now()`,
      `/* chronokms:last-used */ ${LAST_USED_SQL}`,
      `MERGE INTO oauth_tokens t USING src s ON t.id = s.id WHEN MATCHED THEN DELETE`,
    ];
    for (const sql of writes) expect([sql, statementEffect(sql)]).toEqual([sql, "tokens"]);
    const schema = [
      null,
      `SELECT 1; DELETE FROM oauth_tokens`,
      `select 1;delete from audit_logs`,
      `TRUNCATE requesters CASCADE`,
      `COPY oauth_tokens FROM STDIN`,
      `DO $$ BEGIN EXECUTE 'DELETE FROM oauth' || '_tokens'; END $$`,
      `CALL something()`,
      `EXPLAIN ANALYZE UPDATE oauth_tokens SET scope = 'x'`,
      `SET search_path = elsewhere`,
      `CREATE TRIGGER t AFTER INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION f()`,
    ];
    for (const sql of schema) expect([sql, statementEffect(sql)]).toEqual([sql, "schema"]);
    const harmless = [
      `SELECT id FROM oauth_tokens WHERE "userId" = $1 FOR UPDATE`,
      `  select 1;  `,
      `INSERT INTO "audit_logs" ("id") VALUES ($1::uuid)`,
      `UPDATE api_keys SET "lastUsedAt" = now()`,
      LAST_USED_SQL,
    ];
    for (const sql of harmless) expect([sql, statementEffect(sql)]).toEqual([sql, "none"]);
  });
});
