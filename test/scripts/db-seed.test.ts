/**
 * `bun run db:seed` as a real process, twice, on a fresh database of each kind: the first run
 * creates the master key, policies, requesters, keys (printed once) and demo tokens; the second
 * changes no row in any table — audit_logs included (row counts and content hashes compared).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase, type Database } from "../../src/db/database.ts";
import { createEmptyPostgresDatabase, testOnPostgres } from "../support/databases.ts";
import { runBun } from "../support/processes.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function seed(env: Record<string, string>) {
  const { code, stdout, stderr } = await runBun(["run", "db:seed"], env);
  if (code !== 0) throw new Error(`db:seed exited ${code}: ${stderr}`);
  return stdout;
}

/** Row count and an order-independent content hash of every table. */
async function snapshot(db: Database): Promise<Record<string, { rows: number; hash: string }>> {
  const tables = await db.prisma.$queryRawUnsafe<Array<{ name: string }>>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
  );
  const out: Record<string, { rows: number; hash: string }> = {};
  for (const { name } of tables) {
    const [r] = await db.prisma.$queryRawUnsafe<Array<{ rows: bigint; hash: string | null }>>(
      `SELECT count(*) AS rows, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS hash FROM "${name}" t`,
    );
    out[name] = { rows: Number(r!.rows), hash: r!.hash ?? "" };
  }
  return out;
}

const keyLines = (stdout: string) => stdout.split("\n").filter((l) => /^export CHRONOKMS_\w+_KEY=ckms_/.test(l));

async function twice(env: Record<string, string>, open: () => Promise<Database>) {
  const first = await seed(env);
  expect(first).toContain("master key: version 1 created");
  expect(keyLines(first)).toHaveLength(3);
  expect(first).toMatch(/demo-business-hours\s+time-based\s+DISABLED/);
  let db = await open();
  const after1 = await snapshot(db);
  await db.close();
  expect(after1.requesters?.rows).toBe(3);
  expect(after1.api_keys?.rows).toBe(3);
  expect(after1.policies?.rows).toBe(4);
  expect(after1.oauth_tokens?.rows).toBe(3);
  expect(after1.master_keys?.rows).toBe(1);
  expect(after1.audit_logs!.rows).toBeGreaterThan(10);

  const second = await seed(env);
  expect(keyLines(second)).toEqual([]);
  for (const k of keyLines(first)) expect(second).not.toContain(k.split("=")[1]!);
  expect(second).toContain("API keys already exist for demo-admin, demo-writer, demo-reader");
  expect(second).toContain("/api-keys");
  expect(second).toContain("no row changed");
  db = await open();
  const after2 = await snapshot(db);
  await db.close();
  expect(after2).toEqual(after1);
}

test("[pglite] db:seed twice on a fresh embedded database: the second run changes no row", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "chronokms-seed-"));
  dirs.push(dataDir);
  await twice({ DATA_DIR: dataDir }, () => openDatabase({ kind: "pglite", dataDir: join(dataDir, "pglite") }));
}, 120_000);

testOnPostgres(
  "db:seed twice on a fresh PostgreSQL database: the second run changes no row",
  async () => {
    const pg = await createEmptyPostgresDatabase();
    try {
      await twice({ DATABASE_URL: pg.url }, () => openDatabase({ kind: "postgres", url: pg.url }));
    } finally {
      await pg.drop();
    }
  },
  120_000,
);
