/**
 * SIGKILL during rotating refreshes (PostgreSQL, a real service process): the provider rotates
 * refresh tokens strictly (the used one dies; one grace use while its successor is unused). After
 * every kill, the stored refresh token is at least as new as the newest one whose refresh a client
 * saw succeed, at most one issuance behind the provider, and the next refresh is accepted.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { projectRoot } from "../../src/db/migration-files.ts";
import { TEST_KEK } from "../support/app.ts";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../support/databases.ts";
import { startFakeOAuth, type FakeOAuth } from "../support/fake-oauth.ts";
import { BOOTSTRAP_KEY, callApi, provision } from "./helpers.ts";

type Proc = ReturnType<typeof Bun.spawn>;

async function waitReady(url: string, proc: Proc, ms = 30_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`service exited early (${proc.exitCode})`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return;
    } catch {}
    await Bun.sleep(100);
  }
  throw new Error(`not ready at ${url} within ${ms} ms`);
}

/** `fake-access-7-…` / `fake-rotated-7-…` → 7; the initial refresh token → 0. */
const issueNumber = (token: string) => Number(/^fake-(?:access|rotated)-(\d+)-/.exec(token)?.[1] ?? "0");

describeOnPostgres("SIGKILL during rotating refreshes", () => {
  let db: TestDatabase;
  let fake: FakeOAuth;
  let proc: Proc | undefined;
  let url = "";

  const start = async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    proc = Bun.spawn([process.execPath, "src/index.ts"], {
      cwd: projectRoot,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        NODE_ENV: "test",
        LOG_LEVEL: "error",
        PORT: String(port),
        DATABASE_URL: db.url!,
        MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
        BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY,
        GOOGLE_CLIENT_ID: fake.clientId,
        GOOGLE_CLIENT_SECRET: fake.clientSecret,
        GOOGLE_TOKEN_URL: fake.url,
        REFRESH_TIMEOUT_MS: "5000",
      },
      stdout: "ignore",
      stderr: "ignore",
    });
    url = `http://127.0.0.1:${port}`;
    await waitReady(url, proc);
  };

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    fake = startFakeOAuth();
  });
  afterAll(async () => {
    proc?.kill("SIGKILL");
    await proc?.exited;
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
      proc!.kill("SIGKILL");
      await proc!.exited;
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
