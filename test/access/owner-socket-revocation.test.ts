/**
 * The embedded database's owner caches verified API keys like any process; but PGlite has no
 * LISTEN/NOTIFY between processes, so a key disabled by someone else — Studio or a script through
 * the owner socket (src/db/owner-socket.ts) — used to keep working in the owner for the cache TTL.
 * From the attacker's side: the holder of a key an operator just disabled in Studio.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase, type Database } from "../../src/db/database.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { accessHarness, type AccessHarness } from "./support.ts";

describe("[pglite] a key disabled through the owner socket", () => {
  const dir = mkdtempSync(join(tmpdir(), "ckms-socket-revoke-"));
  let db: Database;
  let x: AccessHarness;
  beforeAll(async () => {
    db = await openDatabase({ kind: "pglite", dataDir: join(dir, "data") });
    await applyMigrations(db);
    x = await accessHarness(db, { apiKeyCacheTtlMs: 60_000 });
  }, 60_000);
  afterAll(async () => {
    await x?.close();
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("stops verifying in the owner at once, not after the cache TTL", async () => {
    const k = await x.makeKey(["reader"]);
    expect((await x.access.apiKeys.verify(k.apiKey)).keyId).toBe(k.keyId);
    expect(x.access.apiKeys.cached(k.apiKey)).not.toBeNull();

    const script = join(dir, "disable.ts");
    writeFileSync(
      script,
      `import { openDatabase } from ${JSON.stringify(join(import.meta.dir, "../../src/db/database.ts"))};
const db = await openDatabase({ kind: "pglite", dataDir: ${JSON.stringify(join(dir, "data"))} }, { throughOwner: true });
if (!db.owner) throw new Error("expected to work through the owner");
await db.prisma.apiKey.update({ where: { keyId: ${JSON.stringify(k.keyId)} }, data: { enabled: false } });
await db.close();`,
    );
    const child = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    await expect(x.access.apiKeys.verify(k.apiKey)).rejects.toMatchObject({ reason: "key-disabled" });
  }, 60_000);
});
