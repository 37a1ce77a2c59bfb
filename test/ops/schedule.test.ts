/**
 * The rotation schedule in one process, on both databases: `GET|PUT /v1/keys/schedule` validation,
 * storage and audit; `GET /v1/keys` shows it; and the scheduler, driven tick by tick with a test
 * clock, rotates once per period, re-encrypts, and retires after the delay.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { asAdmin, startTestApp, type TestApp } from "../support/app.ts";
import { createRotationScheduler } from "../../src/keys/scheduler.ts";
import { createLogger } from "../../src/log.ts";
import { seedTokens, verifyTokens } from "../keys/helpers.ts";
import { RETIRE_GRACE_MS } from "../../src/keys/slice-statements.ts";

class TestClock {
  t = Date.UTC(2026, 5, 1, 12);
  now = () => this.t;
}

describeEachDb("rotation schedule", (h) => {
  let t: TestApp;
  const clock = new TestClock();
  beforeAll(async () => {
    t = await startTestApp(h.db, { clock });
  });
  afterAll(() => t.close());

  const put = (body: unknown) =>
    t.app.request(
      "/v1/keys/schedule",
      asAdmin({ method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    );

  test("unset: GET answers a disabled schedule; bad bodies are 400 and change nothing", async () => {
    const res = await t.app.request("/v1/keys/schedule", asAdmin());
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      rotateEverySeconds: null,
      retireAfterSeconds: null,
      enabled: false,
      nextDueAt: null,
      lastRotatedAt: null,
      updatedAt: null,
      updatedBy: null,
    });
    for (const body of [
      { rotateEverySeconds: 59, enabled: true },
      { rotateEverySeconds: 60, retireAfterSeconds: 10, enabled: true },
      { rotateEverySeconds: 60.5, enabled: true },
      { rotateEverySeconds: "60", enabled: true },
      { rotateEverySeconds: 60 },
      { rotateEverySeconds: 60, enabled: true, extra: 1 },
    ]) {
      const r = await put(body);
      expect({ body, status: r.status, code: ((await r.json()) as { error: { code: string } }).error.code }).toEqual({
        body,
        status: 400,
        code: "VALIDATION_FAILED",
      });
    }
    expect(await h.db.prisma.keyRotationSchedule.count()).toBe(0);
  });

  test("PUT stores and audits it; GET /v1/keys shows it; the scheduler rotates once per period, re-encrypts and retires after the delay", async () => {
    await seedTokens(h.db, t.runtime.keys, 50);
    const res = await put({ rotateEverySeconds: 3600, retireAfterSeconds: 600, enabled: true });
    expect(res.status).toBe(200);
    const s = (await res.json()) as { nextDueAt: string; updatedBy: string };
    expect(s.nextDueAt).toBe(new Date(clock.t + 3600_000).toISOString());
    const audit = await h.db.prisma.auditLog.findFirst({ where: { eventType: "KEY_SCHEDULE_UPDATED" } });
    expect(audit?.actor).toBe(s.updatedBy);
    expect(audit?.details).toMatchObject({ rotateEverySeconds: 3600, retireAfterSeconds: 600, enabled: true });
    const keys = (await (await t.app.request("/v1/keys", asAdmin())).json()) as {
      schedule: { nextDueAt: string; enabled: boolean };
    };
    expect(keys.schedule).toMatchObject({ enabled: true, nextDueAt: s.nextDueAt });

    const scheduler = createRotationScheduler({
      db: h.db,
      keys: t.runtime.keys,
      schedule: t.runtime.schedule,
      audit: t.runtime.audit,
      clock,
      log: createLogger("silent"),
    });
    const versions = async () => (await t.runtime.keys.versions()).map((v) => `${v.version}:${v.status}:${v.records}`);
    expect((await scheduler.tick()).rotated).toBeUndefined();
    expect(await versions()).toEqual(["1:active:50"]);

    clock.t += 3600_000;
    expect((await scheduler.tick()).rotated).toEqual({ version: 2, previous: 1 });
    expect(await versions()).toEqual(["1:decrypt-only:0", "2:active:50"]);
    expect((await scheduler.tick()).rotated).toBeUndefined(); // same period: no second rotation

    clock.t += 601_000; // the delay has passed and nothing needs v1, but the retirement grace has not
    expect((await scheduler.tick()).retired).toEqual([]);
    // The grace (65 min) is longer than this 60-min period, so the same pass also rotates to v3.
    clock.t += RETIRE_GRACE_MS - 601_000; // slice statements of v1 have expired too (test/keys/retire-grace.test.ts)
    const late = await scheduler.tick();
    expect(late.rotated).toEqual({ version: 3, previous: 2 });
    expect(late.retired).toEqual([1]);
    expect(await versions()).toEqual(["1:retired:0", "2:decrypt-only:0", "3:active:50"]);

    // Down for three periods: one rotation, and the next is due a full period later.
    clock.t += 3 * 3600_000;
    const down = await scheduler.tick();
    expect(down.rotated).toEqual({ version: 4, previous: 3 });
    expect(down.retired).toEqual([2]); // v3 was rotated out just now
    expect((await scheduler.tick()).rotated).toBeUndefined();
    const after = (await (await t.app.request("/v1/keys/schedule", asAdmin())).json()) as {
      nextDueAt: string;
      lastRotatedAt: string;
    };
    expect(after.nextDueAt).toBe(new Date(clock.t + 3600_000).toISOString());
    expect(after.lastRotatedAt).toBe(new Date(clock.t).toISOString());
    const check = await verifyTokens(h.db, t.runtime.keys);
    expect(check.failures).toEqual([]);
    expect([...check.byVersion]).toEqual([[4, 50]]);
    await scheduler.stop();

    const byActor = await h.db.prisma.auditLog.groupBy({
      by: ["eventType"],
      where: { actor: "scheduler" },
      _count: true,
      orderBy: { eventType: "asc" },
    });
    expect(byActor.map((r) => `${r.eventType}:${r._count}`)).toEqual([
      "KEY_RETIRED:2",
      "KEY_REWRAP_FINISHED:3",
      "KEY_REWRAP_STARTED:3",
      "KEY_ROTATED:3",
    ]);

    // Disabled: nothing runs however late it is.
    expect((await put({ rotateEverySeconds: 3600, enabled: false })).status).toBe(200);
    clock.t += 10 * 3600_000;
    expect((await scheduler.tick()).skipped).toBe(true);
  });
});
