/**
 * Real processes: restart with the same / another KEK, and `keys:rotate` killed with SIGKILL at random
 * points, then rerun: every record decrypts and names the new version; `--retire` only succeeds after.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase, type Database } from "../../src/db/database.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { projectRoot } from "../../src/db/migration-files.ts";
import { TEST_KEK } from "../support/app.ts";
import { createTestDatabase, testOnPostgres } from "../support/databases.ts";
import { OTHER_KEK, agePastRetireGrace, kekOf, keyService, seedTokens, verifyTokens } from "./helpers.ts";
import { freshPort } from "../support/processes.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir() {
  const d = mkdtempSync(join(tmpdir(), "chronokms-keys-"));
  dirs.push(d);
  return d;
}

function spawn(args: string[], env: Record<string, string>) {
  return Bun.spawn([process.execPath, ...args], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NODE_ENV: "test", LOG_LEVEL: "warn", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
}

async function run(args: string[], env: Record<string, string>) {
  const p = spawn(args, env);
  const [code, stdout, stderr] = await Promise.all([
    p.exited,
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
  ]);
  return { code, stdout, stderr };
}

async function jwksWhenReady(url: string, ms = 30_000): Promise<unknown> {
  for (const until = Date.now() + ms; Date.now() < until; await Bun.sleep(100)) {
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.status === 200) return await (await fetch(`${url}/.well-known/jwks.json`)).json();
    } catch {}
  }
  throw new Error(`not ready at ${url}`);
}

test("[pglite] restart with the same KEK serves the same JWKS; with another KEK the process exits non-zero naming both fingerprints", async () => {
  const dataDir = tempDir();
  const port = freshPort();
  const env = { PORT: String(port), DATA_DIR: dataDir, MASTER_KEY_ENCRYPTION_KEY: TEST_KEK };
  const first = spawn(["src/index.ts"], env);
  const jwks1 = await jwksWhenReady(`http://127.0.0.1:${port}`);
  first.kill("SIGTERM");
  expect(await first.exited).toBe(0);

  const second = spawn(["src/index.ts"], env);
  expect(await jwksWhenReady(`http://127.0.0.1:${port}`)).toEqual(jwks1);
  second.kill("SIGTERM");
  expect(await second.exited).toBe(0);

  const wrong = await run(["src/index.ts"], { ...env, MASTER_KEY_ENCRYPTION_KEY: OTHER_KEK });
  expect(wrong.code).not.toBe(0);
  expect(wrong.stderr).toContain(kekOf(TEST_KEK).kekId);
  expect(wrong.stderr).toContain(kekOf(OTHER_KEK).kekId);
  expect(wrong.stderr).toMatch(
    /^chronokms: master key version 1 was wrapped with a different KEK: expected KEK fingerprint/,
  );
  expect(wrong.stderr).not.toContain(OTHER_KEK);
}, 60_000);

/**
 * The kill trials. `open()` returns a database handle the test can use while no script runs (PGlite
 * is single-process, so on PGlite it is closed around every spawn).
 */
async function killTrials(opts: {
  env: Record<string, string>;
  open: () => Promise<Database>;
  rows: number;
  trials: number;
  maxDelayMs: number;
}) {
  let db = await opts.open();
  let keys = await keyService(db);
  await seedTokens(db, keys, opts.rows);
  const reopen = async () => {
    keys.close();
    await db.close();
    db = await opts.open();
    keys = await keyService(db);
  };
  const suspend = async () => {
    keys.close();
    if (db.kind === "pglite") await db.close();
  };
  const resume = async () => {
    if (db.kind === "pglite") db = await opts.open();
    keys = await keyService(db);
  };

  await suspend();
  for (let i = 0; i < opts.trials; i++) {
    const p = spawn(["scripts/keys-rotate.ts", "--batch-size", "200"], opts.env);
    await Bun.sleep(Math.floor(Math.random() * opts.maxDelayMs));
    p.kill("SIGKILL");
    await p.exited;
  }
  await resume();
  // Whatever point each kill hit, nothing became undecryptable.
  const mid = await verifyTokens(db, keys);
  expect(mid.failures).toEqual([]);
  expect(mid.rows).toBe(opts.rows);

  // Make sure some records are pending on an older version, then --retire of it must fail.
  let active = (await keys.active()).version;
  if (mid.byVersion.size === 1 && mid.byVersion.has(active)) {
    await keys.rotate();
    active = (await keys.active()).version;
  }
  const old = [...(await verifyTokens(db, keys)).byVersion.keys()].find((v) => v !== active)!;
  await suspend();
  const refused = await run(["scripts/keys-rotate.ts", "--retire", String(old)], opts.env);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(
    new RegExp(`error: master key version ${old} still protects \\d+ record\\(s\\) \\(oauth_tokens: \\d+\\)`),
  );

  // The rerun finishes the earlier rotation instead of rotating again.
  const rerun = await run(["scripts/keys-rotate.ts"], opts.env);
  expect(rerun.stderr.replace(/re-encrypting:.*\n/g, "")).toBe("");
  expect(rerun.code).toBe(0);
  expect(rerun.stdout).toContain("finishes it instead of rotating again");
  await reopen();
  expect((await keys.active()).version).toBe(active);
  const done = await verifyTokens(db, keys);
  expect(done.failures).toEqual([]);
  expect([...done.byVersion]).toEqual([[active, opts.rows]]);

  await agePastRetireGrace(db, old); // the statement lifetime has passed (test/keys/retire-grace.test.ts)
  await suspend();
  const retired = await run(["scripts/keys-rotate.ts", "--retire", String(old)], opts.env);
  expect(retired.stderr).toBe("");
  expect(retired.stdout).toContain(`version ${old} retired`);
  expect(retired.code).toBe(0);
  await resume();
  expect((await db.prisma.masterKey.findFirst({ where: { version: old } }))?.status).toBe("retired");
  keys.close();
  await db.close();
}

testOnPostgres(
  "keys:rotate killed with SIGKILL at random points (10 trials), then rerun: every record decrypts and names the new version; --retire only after",
  async () => {
    const tdb = await createTestDatabase("postgres");
    await tdb.prisma.$disconnect();
    try {
      await killTrials({
        env: { DATABASE_URL: tdb.url!, MASTER_KEY_ENCRYPTION_KEY: TEST_KEK, DATA_DIR: tempDir() },
        open: () => openDatabase({ kind: "postgres", url: tdb.url! }),
        rows: 2000,
        trials: 10,
        maxDelayMs: 1300,
      });
    } finally {
      await tdb.close();
    }
  },
  90_000,
);

test("[pglite] keys:rotate killed with SIGKILL at random points (on-disk database), then rerun: every record decrypts and names the new version", async () => {
  const dataDir = tempDir();
  const target = { kind: "pglite" as const, dataDir: join(dataDir, "pglite") };
  const first = await openDatabase(target);
  await applyMigrations(first);
  await first.close();
  await killTrials({
    env: { DATA_DIR: dataDir, MASTER_KEY_ENCRYPTION_KEY: TEST_KEK },
    open: () => openDatabase(target),
    rows: 300,
    trials: 3,
    maxDelayMs: 2200,
  });
}, 120_000);

testOnPostgres(
  "keys:rotate skips a record it cannot decrypt (listed, audited, exit 1) instead of stalling; --retire names the record that blocks it",
  async () => {
    const tdb = await createTestDatabase("postgres");
    const env = { DATABASE_URL: tdb.url!, MASTER_KEY_ENCRYPTION_KEY: TEST_KEK, DATA_DIR: tempDir() };
    try {
      const keys = await keyService(tdb);
      await seedTokens(tdb, keys, 50);
      const rows = await tdb.prisma.oAuthToken.findMany({ orderBy: { id: "asc" } });
      const bad = rows[7]!;
      // A ciphertext copied in from another row: it will never decrypt here.
      await tdb.prisma.oAuthToken.update({ where: { id: bad.id }, data: { accessToken: rows[8]!.accessToken } });
      const old = (await keys.active()).version;
      keys.close();
      const r = await run(["scripts/keys-rotate.ts", "--batch-size", "10"], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("1 record(s) do not decrypt and were skipped");
      expect(r.stderr).toContain(`oauth_tokens ${bad.id} token:gmail:${bad.userId} (access)`);
      expect(await tdb.prisma.oAuthToken.count({ where: { keyVersion: old + 1 } })).toBe(49);
      expect(
        await tdb.prisma.auditLog.count({
          where: { eventType: "DECRYPT_FAILED", target: `token:gmail:${bad.userId}` },
        }),
      ).toBe(1);
      const refused = await run(["scripts/keys-rotate.ts", "--retire", String(old)], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(
        `still protects 1 record(s) (oauth_tokens: 1): oauth_tokens ${bad.id} (token:gmail:${bad.userId})`,
      );
    } finally {
      await tdb.close();
    }
  },
  60_000,
);
