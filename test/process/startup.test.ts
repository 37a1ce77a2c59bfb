/** The real process: config refusals, serving on PGlite, graceful stop, data kept across restarts. */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../src/db/migration-files.ts";
import { TEST_KEK } from "../support/app.ts";
import { freshPort } from "../support/processes.ts";

const dataDir = mkdtempSync(join(tmpdir(), "chronokms-startup-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function start(env: Record<string, string>) {
  return Bun.spawn([process.execPath, "src/index.ts"], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NODE_ENV: "test", LOG_LEVEL: "warn", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
}

async function waitReady(url: string, ms = 30_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.status === 200) return r;
    } catch {}
    await Bun.sleep(100);
  }
  throw new Error(`not ready at ${url} within ${ms} ms`);
}

for (const [name, value, expected] of [
  ["PORT", "abc", /^chronokms: PORT: /],
  ["DATABASE_URL", "not a url", /^chronokms: DATABASE_URL: /],
  ["DATABASE_URL", "mysql://h/db", /^chronokms: DATABASE_URL: unsupported scheme/],
  ["NODE_ENV", "staging", /^chronokms: NODE_ENV: /],
] as const) {
  test(`invalid ${name}=${value} exits non-zero with one line naming the variable`, async () => {
    const proc = start({ [name]: value, MASTER_KEY_ENCRYPTION_KEY: TEST_KEK, DATA_DIR: dataDir });
    expect(await proc.exited).not.toBe(0);
    const stderr = (await new Response(proc.stderr).text()).trim();
    expect(stderr.split("\n").length).toBe(1);
    expect(stderr).toMatch(expected);
  });
}

test("[pglite] serves on the embedded database, stops on SIGTERM, keeps its data across restarts", async () => {
  const port = freshPort();
  const env = { PORT: String(port), DATA_DIR: dataDir, MASTER_KEY_ENCRYPTION_KEY: TEST_KEK };
  const url = `http://127.0.0.1:${port}`;

  const first = start(env);
  const ready = await waitReady(url);
  expect(await ready.json()).toMatchObject({ status: "ready", checks: { database: "ok" } });
  expect((await fetch(`${url}/healthz`)).status).toBe(200);
  first.kill("SIGTERM");
  expect(await first.exited).toBe(0);

  const second = start(env);
  await waitReady(url);
  // PGlite is single-process: a third process on the same data directory is refused clearly.
  const intruder = start({ ...env, PORT: String(port + 1) });
  expect(await intruder.exited).not.toBe(0);
  expect(await new Response(intruder.stderr).text()).toContain("is in use by process");
  second.kill("SIGTERM");
  expect(await second.exited).toBe(0);
  const logs = await new Response(second.stdout).text();
  // The second start found its migrations already applied: the data directory persisted.
  expect(logs).not.toContain("migrations applied");
}, 90_000);
