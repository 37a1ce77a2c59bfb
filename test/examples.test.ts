/**
 * The examples under examples/ run here, through the SDK, against the real app on a real port, on
 * both databases, so they never rot: the sensor/analyst demo decrypts exactly the granted hour, and
 * the OAuth demo stores Gmail tokens from a callback and a worker reads them refreshed by the fake
 * provider.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { main as sensorDemo } from "../examples/sensor.ts";
import { main as oauthDemo } from "../examples/gmail-oauth.ts";
import { describeEachDb } from "./support/databases.ts";
import { startTestApp, TEST_ADMIN_KEY, type TestApp } from "./support/app.ts";
import { fakeGoogleEnv, startFakeOAuth, type FakeOAuth } from "./support/fake-oauth.ts";
import { provision } from "./tokens/helpers.ts";

describeEachDb("examples", (h) => {
  let t: TestApp;
  let fake: FakeOAuth;
  let keys: { writer: string; reader: string; stranger: string };
  const lines: string[] = [];
  const log = (l: string) => lines.push(l);

  beforeAll(async () => {
    // Exchanged codes expire in a minute: inside the refresh window, so the first read refreshes.
    fake = startFakeOAuth({ codeExpiresIn: 60 });
    t = await startTestApp(h.db, {
      listen: true,
      env: fakeGoogleEnv(fake),
    });
    keys = await provision(t.url, TEST_ADMIN_KEY);
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await fake?.stop();
  });

  test("sensor: one reading a second over two hours; the analyst decrypts exactly the granted hour, the rest is refused", async () => {
    const r = await sensorDemo({ baseUrl: t.url, readerKey: keys.reader, log });
    expect(r.readings).toBe(7200);
    expect(r.grant.slices.from).toBe(r.grant.slices.to);
    expect(r.decrypted).toHaveLength(3600);
    expect(r.refused).toBe(3600);
    expect(r.decrypted.every((d) => d.ts >= r.hour.start && d.ts < r.hour.end)).toBe(true);
    expect(r.decrypted[0]!.ts).toBe(r.hour.start);
    expect(r.decrypted.at(-1)!.ts).toBe(r.hour.end - 1000);
    expect(lines.some((l) => l.includes("decrypted 3600 readings"))).toBe(true);
    // Another reader, not whitelisted, is refused by policy through the same SDK call.
    await expect(
      sensorDemo({ baseUrl: t.url, readerKey: keys.stranger, intervalMs: 600_000, log }),
    ).rejects.toMatchObject({ code: "ACCESS_DENIED" });
  }, 60_000);

  test("OAuth: the callback stores Gmail tokens; the worker's first read is refreshed by the provider, the second is not", async () => {
    const before = fake.calls.length;
    const r = await oauthDemo({
      baseUrl: t.url,
      writerKey: keys.writer,
      readerKey: keys.reader,
      provider: { tokenUrl: fake.url, clientId: fake.clientId, clientSecret: fake.clientSecret },
      userId: "alice@example.com",
      log,
    });
    expect(r.stored).toBe("Gmail connected for alice@example.com");
    const calls = fake.calls.slice(before);
    expect(calls.map((c) => c.grantType)).toEqual(["authorization_code", "refresh_token"]);
    expect(fake.issued).toHaveLength(2); // the exchanged token, then the refreshed one
    expect(r.first.refreshed).toBe(true);
    expect(r.first.accessToken).toBe(fake.issued[1]!);
    expect(Date.parse(r.first.expiresAt!)).toBeGreaterThan(Date.now() + 30 * 60_000);
    expect(r.second).toMatchObject({ refreshed: false, accessToken: r.first.accessToken });
    const refreshed = await h.db.prisma.auditLog.count({ where: { eventType: "TOKEN_REFRESHED" } });
    expect(refreshed).toBe(1);
  }, 60_000);
});
