/**
 * Refresh on read against a fake provider on a real loopback port, on both databases: success,
 * invalid_grant, 500, a hang past the timeout, no provider / no refresh token, 100 concurrent
 * reads → one upstream call, and a store racing a refresh.
 */
import { beforeEach, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import type { FakeOAuth } from "../support/fake-oauth.ts";
import { fakeProviderApp } from "../support/provider-app.ts";
import { auditRows, ManualClock, toJson, type TokenTestApp } from "./helpers.ts";

const T0 = Date.UTC(2026, 2, 9, 10, 0, 0);
const MIN = 60_000;

describeEachDb("token refresh", (h) => {
  let a: TokenTestApp;
  let fake: FakeOAuth;
  const clock = new ManualClock(T0);
  fakeProviderApp(
    h,
    {
      clock,
      env: () => ({
        REFRESH_TIMEOUT_MS: "400",
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

  const put = (userId: string, body: unknown, integration = "gmail") =>
    a.call(a.writer, "PUT", `/v1/tokens/${integration}/${userId}`, body);
  const get = (userId: string, query = "", integration = "gmail") =>
    a.call(a.reader, "GET", `/v1/tokens/${integration}/${userId}${query}`);
  const rawRow = (userId: string, integration = "gmail") =>
    h.db.prisma.oAuthToken.findFirstOrThrow({ where: { userId, integration } });

  test("a token expiring within 5 minutes is refreshed: refreshed true, new ciphertext that still decrypts", async () => {
    await put("r-ok", { accessToken: "old-access", refreshToken: "the-refresh", expiresAt: T0 + 4 * MIN });
    const before = await rawRow("r-ok");
    const res = await get("r-ok");
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    const issued = fake.issued.at(-1)!;
    expect(body).toMatchObject({
      accessToken: issued,
      hasRefreshToken: true,
      refreshed: true,
      expiresAt: new Date(T0 + 3600_000).toISOString(),
    });
    expect(body).not.toHaveProperty("refreshToken");
    expect(fake.calls).toHaveLength(1);
    expect(fake.calls[0]).toMatchObject({
      grantType: "refresh_token",
      refreshToken: "the-refresh",
      clientId: fake.clientId,
      auth: "body",
    });

    const after = await rawRow("r-ok");
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.version).toBeGreaterThan(before.version);
    expect(JSON.stringify(after)).not.toContain(issued);
    expect(after.refreshStatus).toBe("ok");
    // The stored ciphertext decrypts to the new token (no second upstream call).
    const again = (await (await get("r-ok")).json()) as Record<string, unknown>;
    expect(again).toMatchObject({ accessToken: issued, refreshed: false });
    expect(fake.calls).toHaveLength(1);
    expect((await auditRows(h.db, "TOKEN_REFRESHED")).some((r) => r.target === "token:gmail:r-ok")).toBe(true);
    expect(toJson(await auditRows(h.db, "TOKEN_REFRESHED"))).not.toContain(issued);
  });

  test("a rotated refresh token is stored (encrypted) too; refresh=force refreshes a token that is not due", async () => {
    fake.behaviour = { kind: "ok", rotateRefresh: true };
    await put("r-rot", { accessToken: "a0", refreshToken: "r0", expiresAt: T0 + 60 * MIN });
    expect(((await (await get("r-rot")).json()) as { refreshed: boolean }).refreshed).toBe(false);
    expect(fake.calls).toHaveLength(0);
    const forced = (await (await get("r-rot", "?refresh=force")).json()) as {
      refreshToken?: string;
      refreshed: boolean;
    };
    expect(forced.refreshed).toBe(true);
    expect(forced.refreshToken).toBeUndefined();
    // Only the export endpoint (role exporter) shows the rotated refresh token.
    const exported = (await (await a.call(a.exporter, "GET", "/v1/tokens/gmail/r-rot/export")).json()) as {
      refreshToken: string;
    };
    expect(exported.refreshToken).toStartWith("fake-refresh-");
    expect(JSON.stringify(await rawRow("r-rot"))).not.toContain(exported.refreshToken);
    fake.behaviour = { kind: "ok" };
    // Past the forced-refresh interval (judged by the database clock: moved back in the row).
    await h.db.prisma
      .$executeRaw`UPDATE oauth_tokens SET "forcedRefreshAt" = "forcedRefreshAt" - interval '31 seconds' WHERE "userId" = 'r-rot'`;
    await get("r-rot", "?refresh=force");
    expect(fake.calls.at(-1)?.refreshToken).toBe(exported.refreshToken);
    expect(fake.calls).toHaveLength(2);
  });

  test("no refresh attempted without a refresh token, without provider config, or with refresh=never", async () => {
    await put("r-none", { accessToken: "a", expiresAt: T0 + 2 * MIN });
    await put("r-np", { accessToken: "a", refreshToken: "r", expiresAt: T0 + 2 * MIN }, "slack");
    await put("r-never", { accessToken: "a", refreshToken: "r", expiresAt: T0 + 2 * MIN });
    expect(((await (await get("r-none")).json()) as { refreshed: boolean }).refreshed).toBe(false);
    expect(((await (await get("r-np", "", "slack")).json()) as { refreshed: boolean }).refreshed).toBe(false);
    expect(((await (await get("r-never", "?refresh=never")).json()) as { refreshed: boolean }).refreshed).toBe(false);
    expect(fake.calls).toHaveLength(0);
  });

  test("400 invalid_grant: a still-valid token comes back unrefreshed; an expired one is 409 REAUTH_REQUIRED; both recorded", async () => {
    fake.behaviour = { kind: "invalid_grant" };
    await put("ig-valid", { accessToken: "still-good", refreshToken: "revoked", expiresAt: T0 + 2 * MIN });
    const res = await get("ig-valid");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ accessToken: "still-good", refreshed: false });
    expect((await rawRow("ig-valid")).refreshStatus).toBe("needs-reauth");
    // needs-reauth is sticky: no more upstream calls for this grant until a new token is stored.
    await get("ig-valid");
    expect(fake.calls).toHaveLength(1);

    await put("ig-expired", { accessToken: "dead", refreshToken: "revoked", expiresAt: T0 - MIN });
    const expired = await get("ig-expired");
    expect(expired.status).toBe(409);
    const text = await expired.text();
    expect(JSON.parse(text).error).toMatchObject({ code: "REAUTH_REQUIRED" });
    expect(JSON.parse(text).error.message).toContain("re-authenticate");
    expect(text).not.toContain("dead");
    expect((await rawRow("ig-expired")).refreshStatus).toBe("needs-reauth");
    const status = (await (await a.call(a.reader, "GET", "/v1/tokens/gmail/ig-expired/status")).json()) as {
      status: string;
    };
    expect(status.status).toBe("needs-reauth");
    const failed = (await auditRows(h.db, "TOKEN_REFRESH_FAILED")).filter((r) =>
      r.target?.startsWith("token:gmail:ig-"),
    );
    expect(failed).toHaveLength(2);
    expect(failed[0]!.details).toMatchObject({ reason: "invalid_grant", permanent: true, provider: "GOOGLE" });
    expect(toJson(failed)).not.toContain("revoked");
    // Storing a new token clears the state.
    await put("ig-expired", { accessToken: "fresh", refreshToken: "new-grant", expiresAt: T0 + 60 * MIN });
    expect((await rawRow("ig-expired")).refreshStatus).toBe("ok");
  });

  test("500: valid token returned unrefreshed; expired one is 502 UPSTREAM_FAILED (retryable), retried on the next read", async () => {
    fake.behaviour = { kind: "error500" };
    await put("e5-valid", { accessToken: "ok-for-now", refreshToken: "r", expiresAt: T0 + MIN });
    expect(await (await get("e5-valid")).json()).toMatchObject({ accessToken: "ok-for-now", refreshed: false });
    expect((await rawRow("e5-valid")).refreshStatus).toBe("degraded");
    await put("e5-expired", { accessToken: "gone", refreshToken: "r", expiresAt: T0 - MIN });
    const res = await get("e5-expired");
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("UPSTREAM_FAILED");
    expect(
      (await auditRows(h.db, "TOKEN_REFRESH_FAILED")).some(
        (r) =>
          r.target === "token:gmail:e5-expired" &&
          (r.details as { reason: string; providerError: string }).reason === "provider_5xx" &&
          (r.details as { providerError: string }).providerError === "http_500",
      ),
    ).toBe(true);
    // Inside the backoff window nothing is attempted: 503 REFRESH_BACKOFF with Retry-After.
    fake.behaviour = { kind: "ok" };
    const waiting = await get("e5-expired");
    expect(waiting.status).toBe(503);
    expect(Number(waiting.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(fake.calls).toHaveLength(2);
    // The provider recovers: the next read after the window refreshes.
    clock.t += MIN;
    const ok = await get("e5-expired");
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ refreshed: true });
    expect((await rawRow("e5-expired")).refreshStatus).toBe("ok");
  });

  test("a provider hanging past REFRESH_TIMEOUT_MS: bounded wait, then the documented answer", async () => {
    fake.behaviour = { kind: "hang" };
    await put("hang-valid", { accessToken: "valid-during-hang", refreshToken: "r", expiresAt: T0 + MIN });
    await put("hang-expired", { accessToken: "expired-during-hang", refreshToken: "r", expiresAt: T0 - MIN });
    const started = performance.now();
    const [valid, expired] = await Promise.all([get("hang-valid"), get("hang-expired")]);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(valid.status).toBe(200);
    expect(await valid.json()).toMatchObject({ accessToken: "valid-during-hang", refreshed: false });
    expect(expired.status).toBe(502);
    const reasons = (await auditRows(h.db, "TOKEN_REFRESH_FAILED"))
      .filter((r) => r.target?.startsWith("token:gmail:hang-"))
      .map((r) => (r.details as { reason: string }).reason);
    expect(reasons).toEqual(["timeout", "timeout"]);
  }, 15_000);

  test("100 concurrent reads of an expiring token make exactly one upstream call", async () => {
    fake.behaviour = { kind: "ok", delayMs: 150 };
    await put("herd", { accessToken: "herd-old", refreshToken: "herd-r", expiresAt: T0 + MIN });
    const results = await Promise.all(Array.from({ length: 100 }, () => get("herd")));
    expect(fake.calls).toHaveLength(1);
    const bodies = (await Promise.all(results.map((r) => r.json()))) as Array<{
      accessToken: string;
      refreshed: boolean;
    }>;
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(new Set(bodies.map((b) => b.accessToken))).toEqual(new Set([fake.issued.at(-1)!]));
    expect((await auditRows(h.db, "TOKEN_REFRESHED")).filter((r) => r.target === "token:gmail:herd")).toHaveLength(1);
  }, 30_000);

  test("forced refresh at most once per token per 30 s: 20 forced reads → 1 upstream call, each read gets the fresh token", async () => {
    await put("force20", { accessToken: "f-old", refreshToken: "f-r", expiresAt: T0 + 60 * MIN });
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      clock.t = T0 + i * 1000; // 20 reads spread over 19 s
      const res = await get("force20", "?refresh=force");
      expect(res.status).toBe(200);
      seen.add(((await res.json()) as { accessToken: string }).accessToken);
    }
    expect(fake.calls).toHaveLength(1);
    expect([...seen]).toEqual([fake.issued.at(-1)!]);
    // Concurrent forced reads within the window: still no further call.
    await Promise.all(Array.from({ length: 10 }, () => get("force20", "?refresh=force")));
    expect(fake.calls).toHaveLength(1);
    // The claim lives in the row (database clock), so another process sees it too.
    const claimedAt = (await rawRow("force20")).forcedRefreshAt!.getTime();
    expect(Math.abs(claimedAt - Date.now())).toBeLessThan(30_000);
    // 30 s later (moved back in the row: the claim is judged by the database's clock).
    await h.db.prisma
      .$executeRaw`UPDATE oauth_tokens SET "forcedRefreshAt" = "forcedRefreshAt" - interval '30 seconds' WHERE "userId" = 'force20'`;
    await get("force20", "?refresh=force");
    expect(fake.calls).toHaveLength(2);
  }, 30_000);

  test("attacker race: concurrent forced reads of a non-expiring token all get the fresh token, one upstream call (repeated)", async () => {
    fake.behaviour = { kind: "ok", delayMs: 50 };
    for (let round = 0; round < 5; round++) {
      const user = `force-race-${round}`;
      await put(user, { accessToken: `old-${round}`, refreshToken: `r-${round}` });
      const before = fake.calls.length;
      const results = await Promise.all(Array.from({ length: 10 }, () => get(user, "?refresh=force")));
      expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
      const bodies = (await Promise.all(results.map((r) => r.json()))) as Array<{ accessToken: string }>;
      expect(fake.calls.length - before).toBe(1);
      expect(new Set(bodies.map((b) => b.accessToken))).toEqual(new Set([fake.issued.at(-1)!]));
      // A forced read within the interval is no second call, and it still returns the fresh token.
      const again = (await (await get(user, "?refresh=force")).json()) as { accessToken: string };
      expect(again.accessToken).toBe(fake.issued.at(-1)!);
      expect(fake.calls.length - before).toBe(1);
    }
  }, 30_000);

  test("the forced-refresh claim uses the database clock, not the process clock", async () => {
    clock.t = Date.now();
    await put("force-clock", { accessToken: "fc-old", refreshToken: "fc-r" });
    await get("force-clock", "?refresh=force");
    expect(fake.calls).toHaveLength(1);
    // A process whose clock runs 10 minutes ahead cannot take a second claim early.
    clock.t = Date.now() + 10 * MIN;
    await get("force-clock", "?refresh=force");
    expect(fake.calls).toHaveLength(1);
    const row = await rawRow("force-clock");
    expect(Math.abs(row.forcedRefreshAt!.getTime() - Date.now())).toBeLessThan(10_000);
  });

  test("a failed forced refresh releases its claim: the next forced read after the backoff window tries again", async () => {
    clock.t = Date.now();
    await put("force-fail", { accessToken: "ff-old", refreshToken: "ff-r" });
    fake.behaviour = { kind: "error500" };
    const failed = await get("force-fail", "?refresh=force");
    expect(failed.status).toBe(200); // not expired: the stored token is still served
    expect(((await failed.json()) as { refreshed: boolean }).refreshed).toBe(false);
    expect(fake.calls).toHaveLength(1);
    const after = await rawRow("force-fail");
    expect(after.forcedRefreshAt).toBeNull();
    // The failure is a transient one: the token is degraded with a backoff window (#17), inside
    // which nobody, forced or not, calls the provider again.
    fake.behaviour = { kind: "ok" };
    await get("force-fail", "?refresh=force");
    expect(fake.calls).toHaveLength(1);
    clock.t = (after as unknown as { nextRefreshAt: Date }).nextRefreshAt.getTime();
    const ok = (await (await get("force-fail", "?refresh=force")).json()) as {
      accessToken: string;
      refreshed: boolean;
    };
    expect(fake.calls).toHaveLength(2);
    expect(ok).toMatchObject({ accessToken: fake.issued.at(-1)!, refreshed: true });
  });

  test("compare-and-set: a token stored while a refresh is in flight is not clobbered", async () => {
    fake.behaviour = { kind: "ok", delayMs: 200 };
    await put("race", { accessToken: "race-old", refreshToken: "race-r", expiresAt: T0 + MIN });
    const reading = get("race");
    while (fake.calls.length === 0) await Bun.sleep(5);
    const stored = await put("race", {
      accessToken: "stored-during-refresh",
      refreshToken: "new-grant",
      expiresAt: T0 + 120 * MIN,
    });
    expect(stored.status).toBe(200);
    const read = (await (await reading).json()) as { accessToken: string; refreshed: boolean };
    // The read gets the newer, stored token; the refreshed one from the old grant is discarded.
    expect(read.accessToken).toBe("stored-during-refresh");
    const now = (await (await a.call(a.exporter, "GET", "/v1/tokens/gmail/race/export")).json()) as {
      accessToken: string;
      refreshToken: string;
    };
    expect(now).toMatchObject({ accessToken: "stored-during-refresh", refreshToken: "new-grant" });
    expect(fake.calls).toHaveLength(1);
  }, 15_000);
});
