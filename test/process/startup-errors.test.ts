/**
 * Start-up refusals as real processes (SPEC §12): each is one line naming the cause and the fix,
 * with no stack trace — a port in use, an empty KEK, a lost development KEK (which must not be
 * replaced) — plus `db:seed` refusing production, scripts printing the development-KEK warning
 * once, and the sensor example running without a Node DeprecationWarning.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../src/db/migration-files.ts";
import { startTestApp, TEST_ADMIN_KEY, TEST_KEK } from "../support/app.ts";
import { createEmptyPostgresDatabase, createTestDatabase, postgresAvailable } from "../support/databases.ts";
import { provision } from "../tokens/helpers.ts";

const dirs: string[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups) await c();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir() {
  const d = mkdtempSync(join(tmpdir(), "chronokms-starterr-"));
  dirs.push(d);
  return d;
}

async function run(argv: string[], env: Record<string, string>, timeoutMs = 60_000) {
  const p = Bun.spawn([process.execPath, ...argv], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NODE_ENV: "test", LOG_LEVEL: "warn", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [code, stdout, stderr] = await Promise.all([
    p.exited,
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr: stderr.trim() };
}

/** One line, naming the cause, no stack trace. */
function expectOneLine(stderr: string, pattern: RegExp) {
  expect(stderr.split("\n")).toHaveLength(1);
  expect(stderr).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at |Error:/);
}

test("a port in use: one line naming the port and the fix, no stack trace", async () => {
  const squatter = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("busy") });
  try {
    const r = await run(["src/index.ts"], {
      PORT: String(squatter.port),
      HOST: "127.0.0.1",
      DATABASE_URL: "memory://",
      MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
    });
    expect(r.code).not.toBe(0);
    expectOneLine(
      r.stderr,
      new RegExp(
        `^chronokms: cannot listen on 127\\.0\\.0\\.1:${squatter.port}: the port is already in use.*set PORT to a free port`,
      ),
    );
  } finally {
    squatter.stop(true);
  }
}, 90_000);

test("an empty MASTER_KEY_ENCRYPTION_KEY= is an error, not 'unset': one line, and no development KEK is created", async () => {
  const dataDir = tempDir();
  const r = await run(["src/index.ts"], {
    PORT: "0",
    DATABASE_URL: "memory://",
    DATA_DIR: dataDir,
    MASTER_KEY_ENCRYPTION_KEY: "",
  });
  expect(r.code).not.toBe(0);
  expectOneLine(
    r.stderr,
    /^chronokms: MASTER_KEY_ENCRYPTION_KEY is set but empty; .*unset it to use the development KEK$/,
  );
  expect(existsSync(join(dataDir, "dev-kek"))).toBe(false);
}, 90_000);

test("db:seed refuses NODE_ENV=production with one line and touches nothing", async () => {
  const dataDir = tempDir();
  // `bun scripts/…` rather than `bun run db:seed`, whose own "$ bun scripts/db-seed.ts" echo is not ours.
  const r = await run(["scripts/db-seed.ts"], {
    NODE_ENV: "production",
    DATA_DIR: dataDir,
    MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
  });
  expect(r.code).toBe(1);
  expectOneLine(r.stderr, /^error: db:seed refuses NODE_ENV=production: .*demo requesters.*POST \/v1\/requesters$/);
  expect(r.stdout).not.toContain("ckms_");
  expect(existsSync(join(dataDir, "pglite"))).toBe(false);
}, 60_000);

test("a lost development KEK while master keys exist: one line saying so, naming the KEK; nothing is created. Scripts warn once.", async () => {
  const dataDir = tempDir();
  let env: Record<string, string> = { DATA_DIR: dataDir };
  if (postgresAvailable) {
    const pg = await createEmptyPostgresDatabase();
    cleanups.push(pg.drop);
    env = { ...env, DATABASE_URL: pg.url };
  }
  // First use without a KEK: db:seed creates the development KEK and the master key, and says so once.
  const seeded = await run(["scripts/db-seed.ts"], env, 120_000);
  expect(seeded.code).toBe(0);
  expect(seeded.stderr.match(/DEVELOPMENT KEK/g)).toHaveLength(1);
  const kekFile = join(dataDir, "dev-kek");
  expect(existsSync(kekFile)).toBe(true);
  unlinkSync(kekFile);

  const r = await run(["src/index.ts"], { ...env, PORT: "0" }, 120_000);
  expect(r.code).not.toBe(0);
  expectOneLine(
    r.stderr,
    /^chronokms: the development KEK file .*dev-kek is missing, but master_keys holds keys wrapped by KEK [0-9a-f]{16}: restore that file .*MASTER_KEY_ENCRYPTION_KEY .*\(nothing was created\)$/,
  );
  expect(existsSync(kekFile)).toBe(false);
}, 240_000);

test("bun examples/sensor.ts runs against a real server and prints no Node DeprecationWarning", async () => {
  const db = await createTestDatabase("pglite");
  const t = await startTestApp(db, { listen: true });
  cleanups.push(async () => {
    await t.close();
    await db.close();
  });
  const { reader } = await provision(t.url, TEST_ADMIN_KEY);
  const r = await run(["examples/sensor.ts"], { CHRONOKMS_URL: t.url, CHRONOKMS_READER_KEY: reader }, 120_000);
  expect(r.stderr).not.toContain("DeprecationWarning");
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/analyst: decrypted \d+ readings/);
}, 180_000);
