/** `bun run audit:verify` as its own process against a PostgreSQL test database: exit 0 when intact, 1 naming the first bad row. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../support/databases.ts";
import { runBun } from "../support/processes.ts";
import { asSuperuser, sampleEvent, storeMasterKey, testKey, writerFor } from "./helpers.ts";

function runVerify(url: string) {
  return runBun(["run", "audit:verify"], { DATABASE_URL: url, LOG_LEVEL: "silent", AUDIT_ANCHOR_FILE: "off" });
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
