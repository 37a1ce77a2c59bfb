/** The embedded database's files are private: data directory 0700, files 0600 (SPEC §12), also when an older tree was looser. */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, rmSync, lstatSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../src/db/database.ts";

const root = mkdtempSync(join(tmpdir(), "chronokms-modes-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Paths whose mode lets anyone but the owner in: directories not 0700, files not 0600. */
function loose(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    if (st.isDirectory()) {
      if ((st.mode & 0o777) !== 0o700) out.push(`${p} ${(st.mode & 0o777).toString(8)}`);
      for (const n of readdirSync(p)) walk(join(p, n));
    } else if (st.isFile() && (st.mode & 0o777) !== 0o600) out.push(`${p} ${(st.mode & 0o777).toString(8)}`);
  };
  walk(dir);
  return out;
}

test("a new PGlite data directory is 0700 with 0600 files (catalog included), while open and after close", async () => {
  const dir = join(root, "fresh", "pglite");
  const db = await openDatabase({ kind: "pglite", dataDir: dir });
  try {
    await db.prisma.$executeRawUnsafe("CREATE TABLE t (x int)");
    expect(lstatSync(dir).mode & 0o777).toBe(0o700);
    expect(lstatSync(`${dir}.lock`).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(dir, "PG_VERSION")).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(dir, "global")).mode & 0o777).toBe(0o700);
  } finally {
    await db.close();
  }
  expect(loose(dir)).toEqual([]);
}, 60_000);

test("an existing world-writable data directory is made private at start", async () => {
  const dir = join(root, "old", "pglite");
  await (await openDatabase({ kind: "pglite", dataDir: dir })).close();
  // What earlier versions left behind: 0777 directories, 0666 files, plus a stray file.
  const loosen = (p: string) => {
    const st = lstatSync(p);
    chmodSync(p, st.isDirectory() ? 0o777 : 0o666);
    if (st.isDirectory()) for (const n of readdirSync(p)) loosen(join(p, n));
  };
  mkdirSync(join(dir, "extra"), { recursive: true });
  writeFileSync(join(dir, "extra", "note"), "x");
  loosen(dir);
  expect(loose(dir).length).toBeGreaterThan(100);
  const db = await openDatabase({ kind: "pglite", dataDir: dir });
  try {
    expect(lstatSync(dir).mode & 0o777).toBe(0o700);
    expect(lstatSync(join(dir, "global", readdirSync(join(dir, "global"))[0]!)).mode & 0o777).toBe(0o600);
  } finally {
    await db.close();
  }
  expect(loose(dir)).toEqual([]);
}, 60_000);

test("an existing, looser DATA_DIR (it holds dev-kek and the database lock) is made 0700 at start", async () => {
  const { createRuntime } = await import("../../src/runtime.ts");
  const { createLogger } = await import("../../src/log.ts");
  const { testConfig } = await import("../support/app.ts");
  const dataDir = join(root, "existing-data-dir");
  mkdirSync(dataDir, { recursive: true });
  chmodSync(dataDir, 0o777);
  // The development KEK (no MASTER_KEY_ENCRYPTION_KEY) and the embedded database, both under DATA_DIR.
  const config = {
    ...testConfig({ DATA_DIR: dataDir }),
    kek: undefined,
    database: { kind: "pglite" as const, dataDir: join(dataDir, "pglite") },
  };
  const runtime = await createRuntime(config, createLogger("silent"));
  try {
    expect(lstatSync(dataDir).mode & 0o777).toBe(0o700);
    expect(lstatSync(join(dataDir, "dev-kek")).mode & 0o777).toBe(0o600);
  } finally {
    await runtime.close();
  }
  expect(loose(dataDir)).toEqual([]);
}, 60_000);
