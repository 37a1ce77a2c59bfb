import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { diffHistoryToSchema, applyMigrations } from "../../src/db/migrate.ts";
import { readMigrationList, migrationsDir, projectRoot } from "../../src/db/migration-files.ts";
import { describeEachDb, createEmptyPostgresDatabase, testOnPostgres } from "../support/databases.ts";
import pg from "pg";

test("the migration history and schema.prisma agree (engine diff is empty)", async () => {
  expect(await diffHistoryToSchema()).toBeNull();
}, 30_000);

describeEachDb("migrations", (h) => {
  test("every migration is recorded in _prisma_migrations with prisma's checksum, once", async () => {
    const rows = await h.db.prisma.$queryRawUnsafe<
      { migration_name: string; checksum: string; finished_at: Date | null; applied_steps_count: number }[]
    >(
      `SELECT migration_name, checksum, finished_at, applied_steps_count FROM _prisma_migrations ORDER BY migration_name`,
    );
    const list = readMigrationList();
    expect(rows.map((r) => r.migration_name)).toEqual(list.migrationDirectories.map((d) => d.path));
    for (const row of rows) {
      const sql = readFileSync(join(migrationsDir, row.migration_name, "migration.sql"));
      expect(row.checksum).toBe(createHash("sha256").update(sql).digest("hex"));
      expect(row.finished_at).not.toBeNull();
    }
  });

  test("applying again applies nothing", async () => {
    expect(await applyMigrations(h.db)).toEqual([]);
  });

  test("token rows leave room on their pages: a lastUsed update of a row on a filled page stays on it (HOT)", async () => {
    const [table] = await h.db.prisma.$queryRawUnsafe<{ reloptions: string[] | null }[]>(
      `SELECT reloptions FROM pg_class WHERE relname = 'oauth_tokens'`,
    );
    expect(table?.reloptions).toContain("fillfactor=50");
    // ~1 KB rows, enough to fill the first pages they land on; with full pages (fillfactor 100)
    // the updated row moves to another page, and every index gets a new entry for it.
    const big = "x".repeat(900);
    await h.db.prisma.oAuthToken.createMany({
      data: Array.from({ length: 40 }, (_, i) => ({
        userId: `fill-${i}`,
        integration: "gmail",
        accessToken: big,
        keyVersion: 1,
      })),
    });
    const page = async (userId: string) =>
      (
        await h.db.prisma.$queryRawUnsafe<{ page: string }[]>(
          `SELECT (ctid::text::point)[0]::text AS page FROM oauth_tokens WHERE "userId" = $1`,
          userId,
        )
      )[0]!.page;
    const before = await page("fill-0");
    await h.db.prisma.$executeRawUnsafe(`UPDATE oauth_tokens SET "lastUsed" = now() WHERE "userId" = 'fill-0'`);
    expect(await page("fill-0")).toBe(before);
    await h.db.prisma.oAuthToken.deleteMany({ where: { userId: { startsWith: "fill-" } } });
  });

  test("a lastUsed flush of every row of filled pages updates them all in place (HOT: no index entries)", async () => {
    // Rows sized like real ones (~1.2 KB: two v2 envelopes with their headers, plus the
    // bookkeeping columns), several pages of them, every row's lastUsed written in one statement
    // as the flush does. With too little room left on a page, the new versions move to other
    // pages and every index of the table gets an entry for each.
    const envelope = (n: number) => "e.".repeat(n / 2);
    await h.db.prisma.oAuthToken.createMany({
      data: Array.from({ length: 24 }, (_, i) => ({
        userId: `flush-${String(i).padStart(2, "0")}`,
        integration: "gmail",
        accessToken: envelope(520),
        refreshToken: envelope(440),
        keyVersion: 1,
      })),
    });
    const [counted] = await h.db.prisma.$queryRawUnsafe<{ pages: number }[]>(
      `SELECT count(DISTINCT (ctid::text::point)[0])::int AS pages FROM oauth_tokens WHERE "userId" LIKE 'flush-%'`,
    );
    expect(counted!.pages).toBeGreaterThan(2);
    const hot = await h.db.prisma.$transaction(async (tx) => {
      // This session's HOT updates not yet reported to the statistics (earlier transactions' too).
      const pending = async () =>
        (
          await tx.$queryRawUnsafe<{ n: number }[]>(
            `SELECT pg_stat_get_xact_tuples_hot_updated('oauth_tokens'::regclass)::int AS n`,
          )
        )[0]!.n;
      const before = await pending();
      const updated = await tx.$executeRawUnsafe(
        `UPDATE oauth_tokens SET "lastUsed" = now() WHERE "userId" LIKE 'flush-%'`,
      );
      expect(updated).toBe(24);
      return (await pending()) - before;
    });
    expect(hot).toBe(24);
    await h.db.prisma.oAuthToken.deleteMany({ where: { userId: { startsWith: "flush-" } } });
  });

  test("oauth_tokens keeps no separate userId index: (userId, integration) serves lookups by userId alone", async () => {
    const indexes = await h.db.prisma.$queryRawUnsafe<{ indexname: string }[]>(
      `SELECT indexname FROM pg_indexes WHERE tablename = 'oauth_tokens' ORDER BY indexname`,
    );
    expect(indexes.map((i) => i.indexname)).not.toContain("oauth_tokens_userId_idx");
    // Every query of a user's tokens (list, status, clear-all-for-user) can still probe an index.
    const plan = await h.db.prisma.$transaction(async (tx) => {
      await tx.$executeRawUnsafe("SET LOCAL enable_seqscan = off");
      return tx.$queryRawUnsafe<Array<Record<string, string>>>(
        `EXPLAIN SELECT id FROM oauth_tokens WHERE "userId" = 'someone'`,
      );
    });
    expect(plan.map((r) => Object.values(r)[0]).join("\n")).toContain("oauth_tokens_userId_integration_key");
  });

  test("the database refuses a second active master key", async () => {
    const insert = async (version: number) =>
      await h.db.prisma.masterKey.create({
        data: { version, publicKeyJwk: {}, privateKeyJwe: "x", kekId: "k", sliceSeconds: 3600, status: "active" },
      });
    await insert(9001);
    await expect(insert(9002)).rejects.toThrow();
    await h.db.prisma.masterKey.deleteMany({ where: { version: { in: [9001, 9002] } } });
  });
});

testOnPostgres(
  "two processes migrating one fresh database apply each migration exactly once",
  async () => {
    const target = await createEmptyPostgresDatabase();
    try {
      const run = () =>
        Bun.spawn([process.execPath, "scripts/db-migrate.ts"], {
          cwd: projectRoot,
          env: { ...process.env, DATABASE_URL: target.url, NODE_ENV: "test" },
          stdout: "pipe",
          stderr: "pipe",
        });
      const procs = [run(), run()];
      const codes = await Promise.all(procs.map((p) => p.exited));
      const outputs = await Promise.all(procs.map((p) => new Response(p.stdout).text()));
      expect(codes).toEqual([0, 0]);
      // One process applied everything, the other found nothing to do.
      expect(outputs.filter((o) => o.includes("applied")).length).toBe(1);
      expect(outputs.filter((o) => o.includes("up to date")).length).toBe(1);
      const client = new pg.Client({ connectionString: target.url });
      await client.connect();
      const { rows } = await client.query(
        `SELECT migration_name, count(*)::int AS n FROM _prisma_migrations GROUP BY 1`,
      );
      await client.end();
      expect(rows.length).toBe(readMigrationList().migrationDirectories.length);
      for (const r of rows) expect(r.n).toBe(1);
    } finally {
      await target.drop();
    }
  },
  60_000,
);
