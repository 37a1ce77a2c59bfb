/**
 * Fail-closed audit writes on PostgreSQL: a table locked past the write timeout and the writer's
 * connection killed mid-write both reject with ServiceUnavailableError within a bounded time,
 * leave no partial rows (neither audit rows nor the attached access_requests row), and the writer
 * recovers by itself. (The PGlite counterpart, a batch the database refuses, is in writer.test.ts.)
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import pg from "pg";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../support/databases.ts";
import { ServiceUnavailableError } from "../../src/errors.ts";
import { verifyAuditLog } from "../../src/audit/verify.ts";
import type { AuditWrite } from "../../src/audit/types.ts";
import { sampleEvent, testKey, writerFor, type TestKey } from "./helpers.ts";

let n = 0;
function decision(tag: string): AuditWrite {
  n += 1;
  const id = `0190b000-0000-7000-8000-${String(n).padStart(12, "0")}`;
  return {
    event: sampleEvent(n, { target: tag, details: { accessRequestId: id } }),
    accessRequest: {
      id,
      requesterId: "r-1",
      resourceType: "timeslice",
      resource: { type: "timeslice" },
      startTime: new Date(1_700_000_000_000),
      endTime: new Date(1_700_000_360_000),
      granted: true,
      policyIds: ["p-1"],
    },
  };
}

describeOnPostgres("audit writes fail closed", () => {
  let db: TestDatabase;
  let key: TestKey;
  let admin: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    key = await testKey();
    admin = new pg.Client({ connectionString: db.url });
    // The suite's database is dropped WITH (FORCE) when it ends, which may kill this connection first.
    admin.on("error", () => {});
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await db?.close();
  });

  async function absent(w: AuditWrite) {
    expect(await db.prisma.auditLog.count({ where: { target: w.event.target! } })).toBe(0);
    expect(await db.prisma.accessRequest.count({ where: { id: w.accessRequest!.id! } })).toBe(0);
  }
  async function present(w: AuditWrite) {
    expect(await db.prisma.auditLog.count({ where: { target: w.event.target! } })).toBe(1);
    expect(await db.prisma.accessRequest.count({ where: { id: w.accessRequest!.id! } })).toBe(1);
  }

  async function timed<T>(p: Promise<T>): Promise<{ error: unknown; ms: number }> {
    const t0 = performance.now();
    const error = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    return { error, ms: performance.now() - t0 };
  }

  for (const table of ["audit_logs", "access_requests"]) {
    test(`${table} locked past the write timeout → 503 within a bounded time, nothing written, then recovery`, async () => {
      const w = writerFor(db, key, { writeTimeoutMs: 300 });
      const before = decision(`before-lock-${table}`);
      const first = await w.record(before);
      await admin.query("BEGIN");
      await admin.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
      const doomed = decision(`locked-${table}`);
      const { error, ms } = await timed(w.record(doomed));
      await admin.query("ROLLBACK");
      expect(error).toBeInstanceOf(ServiceUnavailableError);
      expect(ms).toBeLessThan(2_000); // lock_timeout 300 ms; the client-side backstop is 1.6 s
      await absent(doomed); // with access_requests locked the audit rows were already inserted: rolled back with it
      const after = decision(`after-lock-${table}`);
      const receipt = await w.record(after);
      expect(receipt.chainId).not.toBe(first.chainId); // the failed batch's outcome is not trusted as a chain head
      await present(before);
      await present(after);
      await w.close();
      // The abandoned chain is sealed by the sweep (its writer released it), then everything verifies.
      expect(await w.sealAbandonedChains()).toContain(first.chainId);
      expect(await verifyAuditLog(db, { publicKeys: key.publicKeys })).toMatchObject({
        valid: true,
        unclosedChains: 0,
      });
    }, 20_000);
  }

  test("the writer's connection killed while its write waits on a lock → 503 promptly, nothing written, then recovery", async () => {
    // Timeouts far above the kill, so the kill is what ends the write.
    const w = writerFor(db, key, { writeTimeoutMs: 10_000 });
    const before = decision("before-kill");
    const first = await w.record(before);
    // Lock access_requests: the writer inserts its audit rows, then blocks on the attached row.
    await admin.query("BEGIN");
    await admin.query(`LOCK TABLE "access_requests" IN ACCESS EXCLUSIVE MODE`);
    const doomed = decision("killed");
    const pending = timed(w.record(doomed));
    let pid: number | undefined;
    for (let i = 0; i < 200 && pid === undefined; i++) {
      const r = await admin.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
      );
      pid = r.rows[0]?.pid;
      if (pid === undefined) await Bun.sleep(10);
    }
    expect(pid).toBeDefined();
    const killedAt = performance.now();
    await admin.query("SELECT pg_terminate_backend($1)", [pid]);
    const { error } = await pending;
    const afterKill = performance.now() - killedAt;
    await admin.query("ROLLBACK");
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(afterKill).toBeLessThan(3_000);
    await absent(doomed);
    expect(w.stats().failedBatches).toBe(1);
    // Recovery without intervention: the pool replaces the dead connection; a new chain starts.
    const after = decision("after-kill");
    const receipt = await w.record(after);
    expect(receipt.chainId).not.toBe(first.chainId);
    await present(before);
    await present(after);
    await w.close();
    // The chain whose head became uncertain is unsealed with unsigned rows: a finding until it is sealed.
    const before2 = await verifyAuditLog(db, { publicKeys: key.publicKeys });
    expect(before2.findings.map((f) => [f.kind, f.chainId])).toContainEqual(["unsealed-tail", first.chainId]);
    expect(await w.sealAbandonedChains()).toContain(first.chainId);
    const v = await verifyAuditLog(db, { publicKeys: key.publicKeys });
    expect(v).toMatchObject({ valid: true, unclosedChains: 0 });
  }, 30_000);
});
