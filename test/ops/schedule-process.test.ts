/**
 * The rotation schedule run by real service processes on one PostgreSQL, under a controlled clock
 * (test/ops/clocked-server.ts): a 60-second schedule rotates exactly once per period with two
 * processes, re-encrypts every record, retires the old version after the delay, and when the
 * rotating process is SIGKILLed mid-way the other one finishes the re-encryption.
 */
import { afterAll, expect } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../src/db/database.ts";
import { projectRoot } from "../../src/db/migration-files.ts";
import { TEST_ADMIN_KEY, TEST_KEK } from "../support/app.ts";
import { createTestDatabase, testOnPostgres } from "../support/databases.ts";
import { childEnv, freshPort } from "../support/processes.ts";
import { keyService, seedTokens, verifyTokens } from "../keys/helpers.ts";
import { RETIRE_GRACE_MS } from "../../src/keys/slice-statements.ts";

const dir = mkdtempSync(join(tmpdir(), "chronokms-schedule-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const clockFile = join(dir, "clock-offset");

interface Proc {
  name: string;
  port: number;
  logFile: string;
  p: ReturnType<typeof Bun.spawn>;
}

let seq = 0;
function spawnService(env: Record<string, string>): Proc {
  const name = `svc${++seq}`;
  const port = freshPort();
  const logFile = join(dir, `${name}.log`);
  const p = Bun.spawn([process.execPath, "test/ops/clocked-server.ts"], {
    cwd: projectRoot,
    env: childEnv({ LOG_LEVEL: "info", PORT: String(port), CHRONOKMS_TEST_CLOCK_FILE: clockFile, ...env }),
    stdout: Bun.file(logFile),
    stderr: Bun.file(`${logFile}.err`),
  });
  return { name, port, logFile, p };
}

const logOf = (s: Proc) => {
  try {
    return readFileSync(s.logFile, "utf8");
  } catch {
    return "";
  }
};

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 30_000,
): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; await Bun.sleep(25)) {
    const v = await fn();
    if (v) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function ready(s: Proc) {
  await until(
    `${s.name} ready`,
    async () =>
      await fetch(`http://127.0.0.1:${s.port}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      ),
    60_000,
  );
}

const setClock = (offsetMs: number) => writeFileSync(clockFile, String(offsetMs));

testOnPostgres(
  "a 60 s schedule with two processes: one rotation per period, every record re-encrypted, a SIGKILLed rotator finished by the other, the old version retired after the delay",
  async () => {
    setClock(0);
    const tdb = await createTestDatabase("postgres");
    await tdb.prisma.$disconnect();
    const db = await openDatabase({ kind: "postgres", url: tdb.url! });
    const procs: Proc[] = [];
    try {
      let keys = await keyService(db);
      const ROWS = 4000;
      await seedTokens(db, keys, ROWS);
      keys.close();
      const env = {
        DATABASE_URL: tdb.url!,
        MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
        BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY,
        DATA_DIR: join(dir, "data"),
        TEST_SCHEDULER_BATCH: "100",
      };
      procs.push(spawnService(env), spawnService(env));
      await Promise.all(procs.map(ready));

      const put = await fetch(`http://127.0.0.1:${procs[0]!.port}/v1/keys/schedule`, {
        method: "PUT",
        headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ rotateEverySeconds: 60, retireAfterSeconds: 120, enabled: true }),
      });
      expect(put.status).toBe(200);
      const schedule = (await put.json()) as { nextDueAt: string };
      const t0 = Date.parse(schedule.nextDueAt) - 60_000;

      const versions = async () =>
        (await db.prisma.masterKey.findMany({ orderBy: { version: "asc" } })).map((r) => ({
          version: r.version,
          status: r.status,
        }));
      const pendingOn = async (v: number) => db.prisma.oAuthToken.count({ where: { keyVersion: { not: v } } });

      // Not due yet: a few ticks change nothing.
      await Bun.sleep(800);
      expect(await versions()).toEqual([{ version: 1, status: "active" }]);

      // Period 1: exactly one of the two processes rotates; kill it once its re-encryption is under way.
      setClock(t0 + 61_000 - Date.now());
      const rotator = await until("a scheduled rotation", () =>
        procs.find((s) => logOf(s).includes('"msg":"scheduled rotation"')),
      );
      await until(
        "re-encryption under way",
        async () => (await db.prisma.oAuthToken.count({ where: { keyVersion: 2 } })) > 0,
      );
      rotator.p.kill("SIGKILL");
      await rotator.p.exited;
      const stillPending = await pendingOn(2);
      expect(stillPending).toBeGreaterThan(0); // killed mid-way
      const other = procs.find((s) => s !== rotator)!;
      await until(
        "the other process to finish the re-encryption",
        () => logOf(other).includes('"msg":"scheduled re-encryption"'),
        60_000,
      );
      expect(await pendingOn(2)).toBe(0);
      expect(logOf(other)).not.toContain('"msg":"scheduled rotation"');
      procs.splice(procs.indexOf(rotator), 1);
      procs.push(spawnService(env));
      await ready(procs.at(-1)!);
      await Bun.sleep(800); // several ticks of both processes within the same period
      expect(await versions()).toEqual([
        { version: 1, status: "decrypt-only" },
        { version: 2, status: "active" },
      ]);

      // Period 2: one more rotation, not two; v1 is not retired yet (120 s have not passed).
      setClock(t0 + 121_000 - Date.now());
      await until("version 3", async () => (await versions()).length === 3);
      await until("records on version 3", async () => (await pendingOn(3)) === 0, 60_000);
      await Bun.sleep(800);
      expect(await versions()).toEqual([
        { version: 1, status: "decrypt-only" },
        { version: 2, status: "decrypt-only" },
        { version: 3, status: "active" },
      ]);

      // Later: one rotation (4), and v1 (rotated at +61 s, nothing needs it) is retired once 120 s
      // and the retirement grace (statement lifetime + cache max-age) have passed; v2 not yet.
      setClock(t0 + 61_000 + RETIRE_GRACE_MS + 1_000 - Date.now());
      await until("v1 retired", async () => (await versions())[0]!.status === "retired");
      await until("records on version 4", async () => (await pendingOn(4)) === 0, 60_000);
      await Bun.sleep(800);
      expect(await versions()).toEqual([
        { version: 1, status: "retired" },
        { version: 2, status: "decrypt-only" },
        { version: 3, status: "decrypt-only" },
        { version: 4, status: "active" },
      ]);

      keys = await keyService(db);
      const check = await verifyTokens(db, keys);
      keys.close();
      expect(check.failures).toEqual([]);
      expect([...check.byVersion]).toEqual([[4, ROWS]]);

      const byType = async (eventType: string) =>
        db.prisma.auditLog.count({ where: { eventType, actor: "scheduler" } });
      expect(await byType("KEY_ROTATED")).toBe(3);
      expect(await byType("KEY_RETIRED")).toBe(1);
      expect(await byType("KEY_REWRAP_STARTED")).toBeGreaterThanOrEqual(4); // the killed run and its resumption, then one per period
      expect(await byType("KEY_REWRAP_FINISHED")).toBeGreaterThanOrEqual(3);
      expect(await db.prisma.auditLog.count({ where: { eventType: "KEY_SCHEDULE_UPDATED" } })).toBe(1);
    } finally {
      for (const s of procs) s.p.kill("SIGTERM");
      await Promise.all(procs.map((s) => s.p.exited));
      await db.close();
      await tdb.close();
    }
  },
  240_000,
);
