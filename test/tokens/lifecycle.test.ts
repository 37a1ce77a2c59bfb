/**
 * The refresh state machine with a controlled clock, on both databases: ok → degraded (typed
 * reason, backoff with jitter, no upstream attempt inside the window, valid token served, expired
 * one 503 + Retry-After) → degraded again (window doubles) → ok on success (recovery), → needs-reauth
 * on invalid_grant or an expired token without refresh token; each transition one audit row;
 * rotating refresh tokens stored, a response without one keeps the old; 200 concurrent reads
 * during an outage make one upstream attempt per window.
 */
import { beforeEach, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import type { FakeOAuth } from "../support/fake-oauth.ts";
import { fakeProviderApp } from "../support/provider-app.ts";
import { ManualClock, type TokenTestApp } from "./helpers.ts";
import { refreshBackoffMs } from "../../src/tokens/refresh.ts";

const T0 = Date.UTC(2026, 2, 9, 10, 0, 0);
const MIN = 60_000;
const BASE = 60_000;

describeEachDb("token refresh state machine", (h) => {
  let a: TokenTestApp;
  let fake: FakeOAuth;
  const clock = new ManualClock(T0);
  fakeProviderApp(
    h,
    {
      clock,
      env: () => ({
        REFRESH_BACKOFF_BASE_MS: String(BASE),
        REFRESH_BACKOFF_MAX_MS: String(8 * BASE),
      }),
    },
    (app, f) => {
      a = app;
      fake = f;
    },
  );
  beforeEach(() => {
    fake.calls.length = 0;
    fake.behaviour = { kind: "ok" };
    clock.t = T0;
  });

  const put = (userId: string, body: unknown) => a.call(a.writer, "PUT", `/v1/tokens/gmail/${userId}`, body);
  const get = (userId: string) => a.call(a.reader, "GET", `/v1/tokens/gmail/${userId}`);
  const row = (userId: string) => h.db.prisma.oAuthToken.findFirstOrThrow({ where: { userId, integration: "gmail" } });
  const transitions = async (userId: string) =>
    (
      await h.db.prisma.auditLog.findMany({
        where: { target: `token:gmail:${userId}`, eventType: { in: ["TOKEN_REFRESH_FAILED", "TOKEN_REFRESHED"] } },
        orderBy: [{ timestamp: "asc" }, { seq: "asc" }],
      })
    ).map((r) => {
      const d = r.details as { from: string; to: string; reason?: string };
      return [r.eventType, d.from, d.to, d.reason ?? null];
    });

  test("ok → degraded → degraded → ok: backoff windows, no attempt inside them, one audit row per attempt", async () => {
    await put("sm1", { accessToken: "sm1-valid", refreshToken: "sm1-r", expiresAt: T0 + 4 * MIN });
    fake.behaviour = { kind: "error500" };
    // First failure: the still valid token is served; state degraded with a window of [BASE/2, BASE].
    expect(await (await get("sm1")).json()).toMatchObject({ accessToken: "sm1-valid", refreshed: false });
    let r = await row("sm1");
    expect({ status: r.refreshStatus, failures: r.refreshFailures, reason: r.refreshReason }).toEqual({
      status: "degraded",
      failures: 1,
      reason: "provider_5xx",
    });
    const window1 = r.nextRefreshAt!.getTime() - T0;
    expect(window1).toBeGreaterThanOrEqual(BASE / 2);
    expect(window1).toBeLessThanOrEqual(BASE);
    // Inside the window: reads get the valid token, no upstream attempt.
    for (let i = 0; i < 5; i++) expect((await get("sm1")).status).toBe(200);
    expect(fake.calls).toHaveLength(1);
    // The token expires inside the window: 503 REFRESH_BACKOFF with Retry-After until the window ends.
    clock.t = r.nextRefreshAt!.getTime() - 1000;
    await h.db.prisma.oAuthToken.updateMany({ where: { userId: "sm1" }, data: { expiresAt: new Date(clock.t - 1) } });
    const waiting = await get("sm1");
    expect(waiting.status).toBe(503);
    expect(((await waiting.json()) as { error: { code: string } }).error.code).toBe("REFRESH_BACKOFF");
    const retryAfter = Number(waiting.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil((r.nextRefreshAt!.getTime() - clock.t) / 1000));
    expect(fake.calls).toHaveLength(1);
    // After the window: one attempt, fails again, the window doubles.
    clock.t = r.nextRefreshAt!.getTime();
    const failed = await get("sm1");
    expect(failed.status).toBe(502);
    expect(Number(failed.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(fake.calls).toHaveLength(2);
    r = await row("sm1");
    expect(r.refreshFailures).toBe(2);
    const window2 = r.nextRefreshAt!.getTime() - clock.t;
    expect(window2).toBeGreaterThanOrEqual(BASE);
    expect(window2).toBeLessThanOrEqual(2 * BASE);
    // The provider recovers; the next read after the window refreshes: back to ok, counters cleared.
    fake.behaviour = { kind: "ok" };
    clock.t = r.nextRefreshAt!.getTime();
    expect(await (await get("sm1")).json()).toMatchObject({ refreshed: true });
    r = await row("sm1");
    expect({
      status: r.refreshStatus,
      failures: r.refreshFailures,
      next: r.nextRefreshAt,
      reason: r.refreshReason,
    }).toEqual({ status: "ok", failures: 0, next: null, reason: null });
    expect(await transitions("sm1")).toEqual([
      ["TOKEN_REFRESH_FAILED", "ok", "degraded", "provider_5xx"],
      ["TOKEN_REFRESH_FAILED", "degraded", "degraded", "provider_5xx"],
      ["TOKEN_REFRESHED", "degraded", "ok", null],
    ]);
    const status = (await (await a.call(a.reader, "GET", "/v1/tokens/gmail/sm1/status")).json()) as {
      refreshStatus: string;
      nextRefreshAt: string | null;
    };
    expect(status).toMatchObject({ refreshStatus: "ok", nextRefreshAt: null });
  });

  test("degraded → needs-reauth on invalid_grant; no further upstream calls; a new store is ok again", async () => {
    await put("sm2", { accessToken: "sm2", refreshToken: "sm2-r", expiresAt: T0 - 1 });
    fake.behaviour = { kind: "error500" };
    expect((await get("sm2")).status).toBe(502);
    clock.t += BASE;
    fake.behaviour = { kind: "invalid_grant" };
    expect((await get("sm2")).status).toBe(409);
    clock.t += 10 * BASE;
    expect((await get("sm2")).status).toBe(409);
    expect(fake.calls).toHaveLength(2);
    expect(await transitions("sm2")).toEqual([
      ["TOKEN_REFRESH_FAILED", "ok", "degraded", "provider_5xx"],
      ["TOKEN_REFRESH_FAILED", "degraded", "needs-reauth", "invalid_grant"],
    ]);
    await put("sm2", { accessToken: "sm2-new", refreshToken: "sm2-r2", expiresAt: clock.t + 60 * MIN });
    const r = await row("sm2");
    expect({ s: r.refreshStatus, f: r.refreshFailures, n: r.nextRefreshAt }).toEqual({ s: "ok", f: 0, n: null });
  });

  test("an expired token without a refresh token: needs-reauth (no_refresh_token), audited once", async () => {
    await put("sm3", { accessToken: "sm3", expiresAt: T0 - 1 });
    expect((await get("sm3")).status).toBe(409);
    expect((await get("sm3")).status).toBe(409);
    expect((await row("sm3")).refreshStatus).toBe("needs-reauth");
    expect(await transitions("sm3")).toEqual([["TOKEN_REFRESH_FAILED", "ok", "needs-reauth", "no_refresh_token"]]);
  });

  test("rotating refresh tokens: the new one is used next; a response without one keeps the old", async () => {
    await put("sm4", { accessToken: "sm4", refreshToken: "sm4-r0", expiresAt: T0 + MIN });
    fake.behaviour = { kind: "ok", rotateRefresh: true, expiresIn: 60 };
    expect((await get("sm4")).status).toBe(200);
    const rotated = fake.calls.length;
    clock.t += 2 * MIN;
    fake.behaviour = { kind: "ok", expiresIn: 60 };
    expect((await get("sm4")).status).toBe(200);
    clock.t += 2 * MIN;
    expect((await get("sm4")).status).toBe(200);
    const used = fake.calls.map((c) => c.refreshToken);
    expect(rotated).toBe(1);
    expect(used[0]).toBe("sm4-r0");
    expect(used[1]).toMatch(/^fake-refresh-/);
    expect(used[2]).toBe(used[1]);
  });

  test("200 concurrent reads of an expired token during an outage: one upstream attempt per window", async () => {
    await put("sm5", { accessToken: "sm5", refreshToken: "sm5-r", expiresAt: T0 - 1 });
    fake.behaviour = { kind: "error500" };
    for (let w = 0; w < 3; w++) {
      const before = fake.calls.length;
      const results = await Promise.all(Array.from({ length: 200 }, () => get("sm5")));
      expect(fake.calls.length - before).toBe(1);
      const statuses = new Set(results.map((r) => r.status));
      for (const s of statuses) expect([502, 503]).toContain(s);
      for (const r of results) expect(r.headers.get("retry-after")).not.toBeNull();
      clock.t = (await row("sm5")).nextRefreshAt!.getTime();
    }
  }, 60_000);
});

test("backoff: doubles per failure, capped, jitter within [half, full]", () => {
  const b = { baseMs: 1000, maxMs: 16_000 };
  expect([1, 2, 3, 4, 5, 6].map((n) => refreshBackoffMs(n, b, () => 0))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
  expect([1, 2, 3, 4, 5, 6].map((n) => refreshBackoffMs(n, b, () => 0.999999))).toEqual([
    1000, 2000, 4000, 8000, 16000, 16000,
  ]);
});
