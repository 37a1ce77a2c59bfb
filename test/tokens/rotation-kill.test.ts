/**
 * SIGKILL during rotating refreshes (PostgreSQL, a real service process): the provider rotates
 * refresh tokens strictly (the used one dies; one grace use while its successor is unused). After
 * every kill, the stored refresh token is at least as new as the newest one whose refresh a client
 * saw succeed, at most one issuance behind the provider, and the next refresh is accepted.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../support/databases.ts";
import { fakeGoogleEnv, startFakeOAuth, type FakeOAuth } from "../support/fake-oauth.ts";
import { startService, type ServiceProcess } from "../support/processes.ts";
import { BOOTSTRAP_KEY, callApi, provision } from "./helpers.ts";

/** `fake-access-7-…` / `fake-rotated-7-…` → 7; the initial refresh token → 0. */
const issueNumber = (token: string) => Number(/^fake-(?:access|rotated)-(\d+)-/.exec(token)?.[1] ?? "0");

describeOnPostgres("SIGKILL during rotating refreshes", () => {
  let db: TestDatabase;
  let fake: FakeOAuth;
  let svc: ServiceProcess | undefined;
  let url = "";

  const start = async () => {
    svc = await startService(db.url, {
      env: { BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY, ...fakeGoogleEnv(fake), REFRESH_TIMEOUT_MS: "5000" },
    });
    url = svc.url;
  };

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    fake = startFakeOAuth();
  });
  afterAll(async () => {
    await svc?.kill();
    await fake?.stop();
    await db?.close();
  });

  test("the newest acknowledged refresh token survives every kill, and the provider accepts the next refresh", async () => {
    await start();
    const { writer, reader, exporter } = await provision(url, BOOTSTRAP_KEY);
    // Every stored token expires within the refresh window, so every read refreshes.
    expect(
      (
        await callApi(url, writer, "PUT", "/v1/tokens/gmail/rot", {
          accessToken: "a0",
          refreshToken: "rt-0",
          expiresAt: Date.now() + 60_000,
        })
      ).status,
    ).toBe(201);
    fake.rotation.current = "rt-0";
    fake.behaviour = { kind: "strict-rotation", delayMs: 15, expiresIn: 60 };

    for (let trial = 0; trial < 6; trial++) {
      let acknowledged = 0;
      let stop = false;
      const readers = Array.from({ length: 3 }, async () => {
        while (!stop) {
          try {
            const res = await callApi(url, reader, "GET", "/v1/tokens/gmail/rot");
            if (res.status === 200)
              acknowledged = Math.max(
                acknowledged,
                issueNumber(((await res.json()) as { accessToken: string }).accessToken),
              );
          } catch {
            return; // the process is gone
          }
        }
      });
      await Bun.sleep(150 + Math.random() * 400);
      await svc!.kill();
      stop = true;
      await Promise.all(readers);

      await start();
      const exported = await callApi(url, exporter, "GET", "/v1/tokens/gmail/rot/export");
      expect(exported.status).toBe(200);
      const stored = issueNumber(((await exported.json()) as { refreshToken: string }).refreshToken);
      expect({ trial, ok: stored >= acknowledged }).toEqual({ trial, ok: true });
      expect({ trial, ok: stored >= fake.issued.length - 1 }).toEqual({ trial, ok: true });
      // The provider accepts what we kept: the next refresh succeeds (with its one grace use if the kill lost the newest).
      const next = await callApi(url, reader, "GET", "/v1/tokens/gmail/rot");
      expect({ trial, status: next.status }).toEqual({ trial, status: 200 });
      expect(fake.rotation.rejected).toBe(0);
    }
    expect(fake.issued.length).toBeGreaterThan(12);
  }, 180_000);
});
