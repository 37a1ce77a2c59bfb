/** `bun run audit:verify` as its own process against a PostgreSQL test database: exit 0 when intact, 1 naming the first bad row. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { resolve } from "node:path";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../support/databases.ts";
import { asSuperuser, sampleEvent, storeMasterKey, testKey, writerFor } from "./helpers.ts";
import { TEST_KEK } from "../support/app.ts";

const root = resolve(import.meta.dir, "../..");

async function runVerify(url: string) {
  const proc = Bun.spawn([process.execPath, "run", "audit:verify"], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: url,
      LOG_LEVEL: "silent",
      MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
      AUDIT_ANCHOR_FILE: "off",
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stdout, stderr] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  return { code, stdout, stderr };
}

describeOnPostgres("bun run audit:verify", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    const key = await testKey();
    await storeMasterKey(db, key);
    const w = writerFor(db, key, { checkpointEvery: 10 });
    await Promise.all(Array.from({ length: 50 }, (_, i) => w.record(sampleEvent(i))));
    await w.close();
  });
  afterAll(async () => {
    await db?.close();
  });

  test("exit 0 and a one-line summary with rows/s on an intact log", async () => {
    const r = await runVerify(db.url!);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^audit log valid: 57 rows in 1 chain\(s\) .* rows\/s\n$/);
  }, 30_000);

  test("exit 1 naming the first broken link on a tampered log", async () => {
    const victim = await db.prisma.auditLog.findFirstOrThrow({ where: { seq: 20n } });
    await asSuperuser(db, `UPDATE "audit_logs" SET "actor" = 'mallory' WHERE "id" = $1::uuid`, [victim.id]);
    const r = await runVerify(db.url!);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("audit log INVALID");
    expect(r.stdout).toContain(
      `first broken link: chain ${victim.chainId} seq 20 id ${victim.id}: hash does not match`,
    );
    expect(r.stdout).toContain(
      `finding row-edited: chain ${victim.chainId} seq 20 id ${victim.id} hash does not match`,
    );
  }, 30_000);
});
