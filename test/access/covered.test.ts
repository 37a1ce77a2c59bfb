/**
 * Grants release whole slices, so the policies judge what a grant opens (`covered`), not the
 * range asked for. From the reader's side: a valid key and a whitelist, trying to get more data
 * time than the duration limit, the max data age or the future-data rule allow by picking a
 * range that slice rounding widens; and probing key versions.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, bearer, type AccessHarness } from "./support.ts";
import type { Grant } from "../../src/client/types.ts";
import { agePastRetireGrace } from "../keys/helpers.ts";

const MIN = 60_000;
const HOUR = 3_600_000;

describeEachDb("grants judged on covered (default 60 s slices)", (h) => {
  let x: AccessHarness;
  let n = 0;
  beforeAll(async () => {
    // SLICE_SECONDS empty = the service's default.
    x = await accessHarness(h.db, { env: { SLICE_SECONDS: "" } });
    // 12:00:30 UTC: half-way through a one-minute slice.
    x.clock.t = Date.UTC(2026, 2, 10, 12, 0, 30);
  });
  afterAll(async () => x?.close());

  /** A reader admitted by its own whitelist, plus these policies scoped to it alone. */
  async function reader(policies: Array<{ type: string; config: unknown }> = []) {
    const k = await x.makeKey(["reader"], { requesterId: `cov-${h.kind}-${++n}` });
    const scope = { requesters: [k.requesterId] };
    await x.access.policies.create(
      { name: `${k.requesterId}-wl`, type: "whitelist", scope, config: { requesters: [k.requesterId] } },
      "test",
    );
    for (const [i, p] of policies.entries())
      await x.access.policies.create({ name: `${k.requesterId}-${i}`, scope, ...p }, "test");
    return k;
  }
  const ask = async (
    apiKey: string,
    timeRange: { start: number; end: number },
    extra: Record<string, unknown> = {},
  ) => {
    const res = await x.app.request(
      "/v1/access-requests",
      bearer(apiKey, {
        method: "POST",
        body: JSON.stringify({ resource: { type: "timeslice" }, timeRange, ...extra }),
      }),
    );
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  test("the default slice is 60 s; a grant says exactly what it opens, and the rows record it", async () => {
    expect(x.keyVersion.sliceSeconds).toBe(60);
    const k = await reader();
    const now = x.clock.now();
    // A past range that starts and ends mid-slice: the grant opens the two whole slices around it.
    const r = await ask(k.apiKey, { start: now - 5 * MIN + 10_000, end: now - 4 * MIN + 5_000 });
    expect(r.status).toBe(201);
    const g = r.body as unknown as Grant;
    const first = Math.floor((now - 5 * MIN) / MIN);
    expect(g).toMatchObject({ sliceSeconds: 60, slices: { from: first, to: first + 1 } });
    expect(g.covered).toEqual({
      start: new Date(first * MIN).toISOString(),
      end: new Date((first + 2) * MIN - 1).toISOString(),
    });
    expect(g.keys!.map((key) => key.slice)).toEqual([first, first + 1]);
    const row = await h.db.prisma.accessRequest.findUnique({ where: { id: g.id } });
    expect([row!.startTime.getTime(), row!.endTime.getTime(), row!.keyCount]).toEqual([
      first * MIN,
      (first + 2) * MIN - 1,
      2,
    ]);
    const audit = x.audit.events.find((e) => (e.details as { accessRequestId?: string }).accessRequestId === g.id)!;
    expect(audit).toMatchObject({
      eventType: "ACCESS_GRANTED",
      startTime: first * MIN,
      endTime: (first + 2) * MIN - 1,
    });
    expect((audit.details as { requestedRange: unknown }).requestedRange).toEqual({
      start: now - 5 * MIN + 10_000,
      end: now - 4 * MIN + 5_000,
    });
  });

  test("a duration limit judges covered: a range within the limit that rounds to more is denied", async () => {
    const k = await reader([{ type: "duration-limit", config: { maxSeconds: 3600 } }]);
    const now = x.clock.now();
    // 59 min 59.999 s asked, but mid-slice at both ends: 61 slices = 61 minutes would be released.
    const r = await ask(k.apiKey, { start: now - 2 * HOUR, end: now - HOUR - 1 }); // 10:00:30 – 11:00:29.999
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ granted: false, error: { code: "ACCESS_DENIED" }, reasonCode: "RANGE_TOO_LONG" });
    // Aligned to slices, a whole hour is fine.
    const aligned = Math.floor((now - HOUR) / MIN) * MIN - MIN;
    expect((await ask(k.apiKey, { start: aligned, end: aligned + HOUR - 1 })).status).toBe(201);
  });

  test("a max data age judges covered: a start inside the age whose slice begins before it is denied", async () => {
    const k = await reader([{ type: "time-based", config: { timezone: "UTC", maxDataAgeSeconds: 3600 } }]);
    const now = x.clock.now(); // 12:00:30; earliest allowed data 11:00:30
    const r = await ask(k.apiKey, { start: now - HOUR + 15_000, end: now - 10 * MIN }); // 11:00:45, in slice 11:00:00
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ reasonCode: "DATA_TOO_OLD" });
    expect((await ask(k.apiKey, { start: now - HOUR + 30_000, end: now - 10 * MIN })).status).toBe(201); // 11:01:00
  });

  test("future data is denied by default — the current slice included — unless a time-based policy in scope allows it", async () => {
    const k = await reader();
    const now = x.clock.now();
    for (const range of [
      { start: now - 10 * MIN, end: now },
      { start: Date.UTC(2027, 0, 1), end: Date.UTC(2027, 0, 1) },
      { start: Date.UTC(9999, 0, 1), end: Date.UTC(9999, 0, 1) },
    ]) {
      const r = await ask(k.apiKey, range);
      expect(r.status).toBe(403);
      expect(r.body).toMatchObject({ reasonCode: "FUTURE_DATA", policyId: null });
    }
    // Up to the end of the last whole slice is past data.
    expect((await ask(k.apiKey, { start: now - 10 * MIN, end: Math.floor(now / MIN) * MIN - 1 })).status).toBe(201);

    const future = await reader([{ type: "time-based", config: { timezone: "UTC", allowFuture: true } }]);
    const g = await ask(future.apiKey, { start: now - MIN, end: now + MIN });
    expect(g.status).toBe(201);
    // A disabled one does not count.
    const off = await reader();
    await x.access.policies.create(
      {
        name: `${off.requesterId}-off`,
        type: "time-based",
        enabled: false,
        scope: { requesters: [off.requesterId] },
        config: { timezone: "UTC", allowFuture: true },
      },
      "test",
    );
    expect((await ask(off.apiKey, { start: now - MIN, end: now + MIN })).body).toMatchObject({
      reasonCode: "FUTURE_DATA",
    });
  });

  test("simulate judges covered too and shows it", async () => {
    const admin = (await x.makeKey(["admin"])).apiKey;
    const k = await reader([{ type: "duration-limit", config: { maxSeconds: 3600 } }]);
    const now = x.clock.now();
    const res = await x.app.request(
      "/v1/policies/simulate",
      bearer(admin, {
        method: "POST",
        body: JSON.stringify({
          requesterId: k.requesterId,
          resource: { type: "timeslice" },
          timeRange: { start: now - 2 * HOUR, end: now - HOUR - 1 },
          at: now,
        }),
      }),
    );
    const s = (await res.json()) as {
      granted: boolean;
      reasonCode: string;
      slices: { keyCount: number; covered: { start: string } };
    };
    expect(s).toMatchObject({ granted: false, reasonCode: "RANGE_TOO_LONG", slices: { keyCount: 61 } });
  });

  test("an unknown or retired key version is an audited denial in the denial shape; a requester no whitelist admits learns only that", async () => {
    const k = await reader();
    const stranger = await x.makeKey(["reader"], { requesterId: `cov-stranger-${h.kind}` });
    const now = x.clock.now();
    const range = { start: now - 10 * MIN, end: now - 5 * MIN };
    const before = await h.db.prisma.accessRequest.count();

    const unknown = await ask(k.apiKey, range, { keyVersion: 999 });
    expect(unknown.status).toBe(403);
    expect(unknown.body).toMatchObject({
      granted: false,
      error: { code: "ACCESS_DENIED" },
      reasonCode: "KEY_UNAVAILABLE",
      policyId: null,
    });
    expect(typeof unknown.body.id).toBe("string");
    expect(JSON.stringify(unknown.body)).not.toMatch(/privateJwk|seed/);

    // The stranger's answer is the same whether the version exists or not.
    const probe = await ask(stranger.apiKey, range, { keyVersion: 999 });
    const real = await ask(stranger.apiKey, range, { keyVersion: x.keyVersion.version });
    expect(probe.status).toBe(403);
    expect([probe.body.reasonCode, real.body.reasonCode]).toEqual(["NO_POLICY", "NO_POLICY"]);

    // Retired: rotate, retire the old version, ask for it.
    const old = x.keyVersion.version;
    await x.runtime.keys.rotate({ actor: "test" });
    await agePastRetireGrace(h.db, old); // as if the operator waited out the retirement grace
    await x.runtime.keys.retire(old, { actor: "test" });
    const retired = await ask(k.apiKey, range, { keyVersion: old });
    expect(retired.status).toBe(403);
    expect(retired.body).toMatchObject({ reasonCode: "KEY_UNAVAILABLE" });

    // Every one of them is a decision: an access_requests row and one ACCESS_DENIED row each.
    expect(await h.db.prisma.accessRequest.count()).toBe(before + 4);
    for (const r of [unknown, probe, retired]) {
      const rows = await h.db.prisma.auditLog.findMany({
        where: { eventType: "ACCESS_DENIED", details: { path: ["accessRequestId"], equals: r.body.id as string } },
      });
      expect(rows).toHaveLength(1);
    }
    // The new active version was created with the current default.
    expect((await x.runtime.keys.active()).sliceSeconds).toBe(60);
  });
});

describeEachDb("a key version keeps the slice length it was created with", (h) => {
  test("v1 made with 3600 stays 3600 when the default is 60; the next version gets 60", async () => {
    const first = await accessHarness(h.db, { env: { SLICE_SECONDS: "3600" } });
    expect(first.keyVersion.sliceSeconds).toBe(3600);
    await first.close();
    const second = await accessHarness(h.db, { env: { SLICE_SECONDS: "" } });
    try {
      expect((await second.runtime.keys.active()).sliceSeconds).toBe(3600);
      const { version } = await second.runtime.keys.rotate({ actor: "test" });
      expect((await second.runtime.keys.get(version)).sliceSeconds).toBe(60);
      expect((await second.runtime.keys.get(version - 1)).sliceSeconds).toBe(3600);
    } finally {
      await second.close();
    }
  });
});
