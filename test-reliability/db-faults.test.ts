/**
 * Database faults under load (PostgreSQL, a real service process): the service's connections are
 * terminated (`pg_terminate_backend`) and, separately, `audit_logs` is locked ACCESS EXCLUSIVE for
 * a few seconds while a mixed load runs. Every response must be correct or a clean 503 with no
 * secret; after each fault the load must be fully correct again within a few seconds without a
 * restart; every released secret must have its durable audit row; the audit chain must verify.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import pg from "pg";
import { TEST_ADMIN_KEY } from "../test/support/app.ts";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../test/support/databases.ts";
import { prepareLoad, recoveryMs, runLoad, type LoadKeys } from "./load.ts";
import { envInt, figure, verifyAudit } from "./support.ts";
import { startService, type ServiceProcess } from "../test/support/processes.ts";

const WORKERS = envInt("RELIABILITY_FAULT_WORKERS", 8);
const LOCK_MS = envInt("RELIABILITY_LOCK_MS", 3_000);
/** "Within a few seconds": the bar for being fully correct again after a fault ends. */
const RECOVERY_BAR_MS = 5_000;

describeOnPostgres("database faults under load", () => {
  let db: TestDatabase;
  let svc: ServiceProcess;
  let admin: pg.Client;
  let keys: LoadKeys;

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    // A short audit write timeout so a locked table turns into 503s quickly instead of queueing.
    svc = await startService(db.url, { env: { AUDIT_WRITE_TIMEOUT_MS: "500", DATABASE_POOL_SIZE: "10" } });
    keys = await prepareLoad(svc.url, TEST_ADMIN_KEY);
    admin = new pg.Client({ connectionString: db.url });
    // The suite's database is dropped WITH (FORCE) when it ends, which may kill this connection first.
    admin.on("error", () => {});
    await admin.connect();
  }, 60_000);

  afterAll(async () => {
    await admin?.end().catch(() => {});
    await svc?.stop();
    await db?.close();
  });

  async function serviceBackends(): Promise<number[]> {
    const r = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
    );
    return r.rows.map((x) => x.pid);
  }

  async function grantedRows(): Promise<number> {
    const r = await admin.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM audit_logs WHERE "eventType" = 'ACCESS_GRANTED'`,
    );
    return Number(r.rows[0]!.n);
  }

  test("connections terminated and the audit table locked during a load: correct or clean 503, self-recovery, audit chain valid", async () => {
    const grantedBefore = await grantedRows();
    const load = runLoad([svc.url], keys, { workers: WORKERS });
    await Bun.sleep(1_500);
    const baseline = { total: load.stats.total, wrong: load.stats.wrong.length, unavailable: load.stats.unavailable };

    // Fault 1: kill every connection of the service, three times 300 ms apart (the pool, the
    // policy LISTEN connection, anything mid-transaction).
    let killed = 0;
    for (let i = 0; i < 3; i++) {
      const pids = await serviceBackends();
      for (const pid of pids) await admin.query("SELECT pg_terminate_backend($1)", [pid]);
      killed += pids.length;
      await Bun.sleep(300);
    }
    const killEnd = Date.now();
    await Bun.sleep(RECOVERY_BAR_MS);
    const killRecovery = recoveryMs(load.stats, killEnd);
    const afterKill = { total: load.stats.total, unavailable: load.stats.unavailable };

    // Fault 2: audit_logs locked ACCESS EXCLUSIVE for a few seconds.
    await admin.query("BEGIN");
    await admin.query("LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE");
    const lockedAt = Date.now();
    await Bun.sleep(LOCK_MS);
    await admin.query("ROLLBACK");
    const lockEnd = Date.now();
    const duringLock = load.stats.timeline.filter((t) => t.at >= lockedAt + 1_000 && t.at < lockEnd);
    await Bun.sleep(RECOVERY_BAR_MS);
    const lockRecovery = recoveryMs(load.stats, lockEnd);

    const stats = await load.stop();
    // Fail closed: every plaintext or key set that left the service has its durable decision row.
    const released = stats.tokenReads + stats.grants;
    const grantedAudited = (await grantedRows()) - grantedBefore;
    const v = await verifyAudit(db);

    figure(
      `db faults: ${WORKERS}-way load, ${stats.total} responses: ${stats.correct} correct, ${stats.unavailable} clean 503, ${stats.wrong.length} wrong; ` +
        `${killed} backends terminated → fully correct again ${killRecovery} ms after; audit_logs locked ${LOCK_MS} ms (${duringLock.filter((t) => !t.ok).length}/${duringLock.length} refused while locked) → ${lockRecovery} ms after; ` +
        `${released} secrets released, ${grantedAudited} ACCESS_GRANTED rows; audit ${v.valid ? "valid" : "INVALID"} (${v.checked} rows, ${v.chains} chains, ${v.unclosedChains} unclosed)`,
    );
    if (stats.wrong.length) console.log(`  wrong: ${[...new Set(stats.wrong)].slice(0, 20).join("\n  ")}`);
    if (svc.proc.exitCode !== null || stats.wrong.length)
      console.log(
        `  service (exit ${svc.proc.exitCode}) log:\n${(await svc.stderr())
          .split("\n")
          .filter((l) => /error|fatal|unhandled/i.test(l))
          .slice(-15)
          .join("\n")
          .slice(-6000)}`,
      );

    expect(baseline.wrong).toBe(0);
    expect(baseline.unavailable).toBe(0);
    expect(baseline.total).toBeGreaterThan(20);
    expect(svc.proc.exitCode).toBeNull();
    expect([...new Set(stats.wrong)]).toEqual([]);
    // Fault 1 really bit: the service had connections to terminate.
    expect(killed).toBeGreaterThan(0);
    expect(killRecovery).toBeGreaterThanOrEqual(0);
    expect(killRecovery).toBeLessThan(RECOVERY_BAR_MS);
    expect(lockRecovery).toBeGreaterThanOrEqual(0);
    expect(lockRecovery).toBeLessThan(RECOVERY_BAR_MS);
    // The lock really bit: decisions were refused while audit_logs was locked.
    expect(duringLock.some((t) => !t.ok)).toBe(true);
    expect(afterKill.total).toBeGreaterThan(baseline.total);
    expect(grantedAudited).toBeGreaterThanOrEqual(released);
    expect(v.valid).toBe(true);
    // Still serving after both faults, with no restart.
    expect(svc.proc.exitCode).toBeNull();
    expect((await fetch(`${svc.url}/readyz`)).status).toBe(200);
  }, 120_000);
});
