/**
 * Exactly one upstream refresh across processes: two real service processes on one PostgreSQL,
 * 100 concurrent reads of an expiring token split between them, a fake provider on loopback.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../support/databases.ts";
import { fakeGoogleEnv, startFakeOAuth, type FakeOAuth } from "../support/fake-oauth.ts";
import { startService, type ServiceProcess } from "../support/processes.ts";
import { BOOTSTRAP_KEY, callApi, provision } from "./helpers.ts";

describeOnPostgres("refresh across two service processes", () => {
  let db: TestDatabase;
  let fake: FakeOAuth;
  const services: ServiceProcess[] = [];
  const urls: string[] = [];
  let writer = "";
  let reader = "";

  const start = async () => {
    const svc = await startService(db.url, {
      env: {
        BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY,
        ...fakeGoogleEnv(fake),
        REFRESH_TIMEOUT_MS: "5000",
        // Long enough that the outage test's reads all fall in one backoff window.
        REFRESH_BACKOFF_BASE_MS: "120000",
      },
    });
    services.push(svc);
    urls.push(svc.url);
  };

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    fake = startFakeOAuth({ behaviour: { kind: "ok", delayMs: 300 } });
  });
  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await fake?.stop();
    await db?.close();
  });

  test("100 concurrent reads over two processes cause exactly one refresh call; the new token is stored encrypted", async () => {
    // One after the other: the first creates the master key; the second starts after the
    // whitelist exists, so neither process's policy cache can be stale for this test.
    await start();
    ({ writer, reader } = await provision(urls[0]!, BOOTSTRAP_KEY));
    await start();

    const put = await callApi(urls[0]!, writer, "PUT", "/v1/tokens/gmail/herd", {
      accessToken: "herd-old",
      refreshToken: "herd-refresh",
      expiresAt: Date.now() + 60_000,
    });
    expect(put.status).toBe(201);

    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => callApi(urls[i % 2]!, reader, "GET", "/v1/tokens/gmail/herd")),
    );
    const bodies = (await Promise.all(results.map((r) => r.json()))) as Array<{
      accessToken?: string;
      error?: unknown;
    }>;
    expect(results.map((r) => r.status)).toEqual(Array(100).fill(200));
    expect(fake.calls).toHaveLength(1);
    const issued = fake.issued[0]!;
    expect(new Set(bodies.map((b) => b.accessToken))).toEqual(new Set([issued]));

    const rows = await db.prisma.$queryRawUnsafe<Array<Record<string, unknown>>>(
      `SELECT * FROM oauth_tokens WHERE "userId" = 'herd'`,
    );
    const raw = JSON.stringify(rows);
    expect(raw).not.toContain(issued);
    expect(raw).not.toContain("herd-refresh");
    expect(rows[0]!.refreshStatus).toBe("ok");
    expect(
      await db.prisma.auditLog.count({ where: { eventType: "TOKEN_REFRESHED", target: "token:gmail:herd" } }),
    ).toBe(1);
    expect(await db.prisma.auditLog.count({ where: { eventType: "ACCESS_GRANTED" } })).toBeGreaterThanOrEqual(100);
  }, 90_000);

  test("attacker race: 20 concurrent forced reads over two processes all get the fresh token, one upstream call", async () => {
    for (let round = 0; round < 3; round++) {
      const user = `forced-${round}`;
      const put = await callApi(urls[0]!, writer, "PUT", `/v1/tokens/gmail/${user}`, {
        accessToken: `forced-old-${round}`,
        refreshToken: `forced-r-${round}`,
      });
      expect(put.status).toBe(201);
      const before = fake.calls.length;
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          callApi(urls[i % 2]!, reader, "GET", `/v1/tokens/gmail/${user}?refresh=force`),
        ),
      );
      const bodies = (await Promise.all(results.map((r) => r.json()))) as Array<{ accessToken?: string }>;
      expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
      expect(fake.calls.length - before).toBe(1);
      expect(new Set(bodies.map((b) => b.accessToken))).toEqual(new Set([fake.issued.at(-1)!]));
    }
  }, 90_000);

  test("200 concurrent reads of an expired token over two processes during a provider outage: one upstream attempt in the window", async () => {
    const { writer, reader } = await provision(urls[0]!, BOOTSTRAP_KEY, "-outage");
    // Both processes see the new whitelist (policy changes reach other processes by NOTIFY / 1 s poll).
    await Bun.sleep(1500);
    fake.calls.length = 0;
    fake.behaviour = { kind: "error500" };
    const put = await callApi(urls[0]!, writer, "PUT", "/v1/tokens/gmail/outage", {
      accessToken: "outage-old",
      refreshToken: "outage-refresh",
      expiresAt: Date.now() - 1000,
    });
    expect(put.status).toBe(201);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => callApi(urls[i % 2]!, reader, "GET", "/v1/tokens/gmail/outage")),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 502 || s === 503)).toBe(true);
    expect(results.every((r) => r.headers.get("retry-after") !== null)).toBe(true);
    expect(fake.calls).toHaveLength(1);
    const row = (await db.prisma.oAuthToken.findFirstOrThrow({ where: { userId: "outage" } })) as {
      refreshStatus: string;
      refreshFailures: number;
      nextRefreshAt: Date | null;
    };
    expect({ status: row.refreshStatus, failures: row.refreshFailures }).toEqual({ status: "degraded", failures: 1 });
    expect(row.nextRefreshAt!.getTime()).toBeGreaterThan(Date.now());
    expect(
      await db.prisma.auditLog.count({ where: { eventType: "TOKEN_REFRESH_FAILED", target: "token:gmail:outage" } }),
    ).toBe(1);
    fake.behaviour = { kind: "ok", delayMs: 300 };
  }, 90_000);
});
