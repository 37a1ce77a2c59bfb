/**
 * Maintenance scripts on the embedded default WHILE the service runs: each finds the owner through
 * its pid lock and works through its socket (src/db/owner-socket.ts) while the service keeps
 * answering requests — `db:seed`, `keys:rotate` (and `--status`), `tokens:cleanup`,
 * `keys:rewrap-kek`, `audit:verify`, and `db:studio`, whose tables headless Chromium sees.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../src/db/migration-files.ts";
import { TEST_ADMIN_KEY, TEST_KEK } from "../support/app.ts";
import { runBun, freshPort } from "../support/processes.ts";
import { OTHER_KEK } from "../keys/helpers.ts";
import { CHROMIUM_ARGS, chromiumPath, requireBrowserIfAsked } from "../../scripts/lib/chromium.ts";

const chromium = chromiumPath;
requireBrowserIfAsked();

const dir = mkdtempSync(join(tmpdir(), "ckms-live-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const port = freshPort();
const base = `http://127.0.0.1:${port}`;
const env = {
  PATH: process.env.PATH ?? "",
  HOME: process.env.HOME ?? "",
  NODE_ENV: "test",
  LOG_LEVEL: "warn",
  PORT: String(port),
  DATA_DIR: join(dir, "data"),
  DATABASE_URL: "",
  MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
  BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY,
};

const run = (args: string[], extra: Record<string, string> = {}) => runBun(args, { ...env, ...extra });

const admin = { authorization: `Bearer ${TEST_ADMIN_KEY}` };

test("[pglite] with the service running on the embedded database, every maintenance script works through it", async () => {
  const service = Bun.spawn([process.execPath, "src/index.ts"], {
    cwd: projectRoot,
    env,
    stdout: "pipe",
    stderr: "pipe",
  });
  // The service keeps serving while the scripts run: a steady trickle of admin reads, all 200.
  let load: Promise<number[]> | undefined;
  let loading = true;
  try {
    for (let i = 0; i < 300; i++) {
      if (
        await fetch(`${base}/readyz`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      await Bun.sleep(100);
    }
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const socketDir = join(dir, "data", "pglite.socket");
    expect(statSync(socketDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(socketDir, ".s.PGSQL.5432")).mode & 0o777).toBe(0o600);

    load = (async () => {
      const statuses: number[] = [];
      while (loading) {
        statuses.push((await fetch(`${base}/v1/keys`, { headers: admin })).status);
        await Bun.sleep(20);
      }
      return statuses;
    })();

    const seed = await run(["scripts/db-seed.ts"]);
    expect({ code: seed.code, stderr: seed.stderr }).toEqual({ code: 0, stderr: "" });
    const tokens = (await (await fetch(`${base}/v1/keys`, { headers: admin })).json()) as {
      versions: Array<{ records: number }>;
    };
    expect(tokens.versions[0]!.records).toBeGreaterThan(0); // the service sees the seeded records

    const rotate = await run(["scripts/keys-rotate.ts"]);
    expect(rotate.code).toBe(0);
    expect(rotate.stdout).toContain("rotated: version 2 is active, version 1 is decrypt-only");
    const status = await run(["scripts/keys-rotate.ts", "--status"]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/\n\s+2\s+active/);
    // The service notices the rotation made through it.
    const after = (await (await fetch(`${base}/v1/keys`, { headers: admin })).json()) as {
      versions: Array<{ version: number; status: string; records: number }>;
    };
    expect(after.versions.map((v) => `${v.version}:${v.status}:${v.version === 1 ? v.records : "-"}`)).toEqual([
      "1:decrypt-only:0",
      "2:active:-",
    ]);

    const cleanup = await run(["scripts/tokens-cleanup.ts", "--older-than", "30d"]);
    expect(cleanup.code).toBe(0);
    expect(cleanup.stdout).toMatch(/^removed \d+ token record\(s\)/);

    const verify = await run(["scripts/audit-verify.ts"]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain("audit log valid");

    const rewrap = await run(["scripts/keys-rewrap-kek.ts"], {
      MASTER_KEY_ENCRYPTION_KEY: OTHER_KEK,
      MASTER_KEY_ENCRYPTION_KEY_PREVIOUS: TEST_KEK,
    });
    expect({ code: rewrap.code, stderr: rewrap.stderr.replace(/^rewrapping: \d+\/\d+ \(\d+%\)\n/gm, "") }).toEqual({
      code: 0,
      stderr: "",
    });
    expect(rewrap.stderr).toContain("rewrapping: 2/2 (100%)"); // no terminal: plain progress lines
    expect(rewrap.stdout).toContain("done: 2 rewrapped");

    if (chromium) {
      const studioPort = 21000 + Math.floor(Math.random() * 20000);
      const studio = Bun.spawn([process.execPath, "scripts/db-studio.ts", "--port", String(studioPort)], {
        cwd: projectRoot,
        env,
        stdout: "pipe",
        stderr: "pipe",
      });
      try {
        let up = false;
        for (let i = 0; i < 300 && !up; i++) {
          await Bun.sleep(200);
          up = await fetch(`http://127.0.0.1:${studioPort}/`).then(
            (r) => r.ok,
            () => false,
          );
        }
        expect(up).toBe(true);
        const browser = Bun.spawn(
          [
            chromium,
            ...CHROMIUM_ARGS,
            `--user-data-dir=${join(dir, "profile")}`,
            "--virtual-time-budget=20000",
            "--dump-dom",
            `http://localhost:${studioPort}/`,
          ],
          { stdout: "pipe", stderr: "pipe" },
        );
        const dom = await new Response(browser.stdout).text();
        await browser.exited;
        for (const table of ["master_keys", "oauth_tokens", "audit_logs", "key_rotation_schedules"])
          expect({ table, listed: dom.includes(table) }).toEqual({ table, listed: true });
      } finally {
        studio.kill("SIGTERM");
        await studio.exited;
      }
    }

    loading = false;
    const statuses = await load;
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  } finally {
    loading = false;
    await load?.catch(() => {});
    service.kill("SIGTERM");
    expect(await service.exited).toBe(0);
  }

  // Stopped: the scripts open the directory themselves again (now under the new KEK).
  expect(existsSync(join(dir, "data", "pglite.socket", ".s.PGSQL.5432"))).toBe(false);
  const direct = await run(["scripts/audit-verify.ts"], { MASTER_KEY_ENCRYPTION_KEY: OTHER_KEK });
  expect(direct.code).toBe(0);
  expect(direct.stdout).toContain("audit log valid");
  const restarted = await run(["scripts/keys-rotate.ts", "--status"], { MASTER_KEY_ENCRYPTION_KEY: OTHER_KEK });
  expect(restarted.code).toBe(0);
}, 180_000);
