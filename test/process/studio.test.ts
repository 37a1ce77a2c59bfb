/**
 * `bun run db:studio` on the embedded database: the script serves PGlite over the PostgreSQL wire
 * protocol and Prisma Studio lists our tables (rendered by headless Chromium, as a person sees it).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../src/db/migration-files.ts";
import { TEST_KEK } from "../support/app.ts";
import { freshPort } from "../support/processes.ts";

import { CHROMIUM_ARGS, chromiumPath as chromium, requireBrowserIfAsked } from "../../scripts/lib/chromium.ts";

requireBrowserIfAsked();
const dir = mkdtempSync(join(tmpdir(), "chronokms-studio-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test.skipIf(!chromium)(
  "[pglite] db:studio opens Prisma Studio on the embedded database and lists the tables",
  async () => {
    const port = freshPort();
    const studio = Bun.spawn([process.execPath, "scripts/db-studio.ts", "--port", String(port)], {
      cwd: projectRoot,
      env: {
        ...process.env,
        DATA_DIR: join(dir, "data"),
        MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
        DATABASE_URL: "",
        NODE_ENV: "test",
      },
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      let up = false;
      let exited = false;
      void studio.exited.then(() => (exited = true));
      for (let i = 0; i < 300 && !up && !exited; i++) {
        await Bun.sleep(200);
        up = await fetch(`http://127.0.0.1:${port}/`).then(
          (r) => r.ok,
          () => false,
        );
      }
      // A studio that exited (a port taken meanwhile, a start-up error) says why, instead of a bare false.
      let why = "";
      if (!up) {
        studio.kill("SIGTERM");
        await studio.exited;
        why = (await new Response(studio.stderr).text().catch(() => "")) || "(no output)";
      }
      expect({ up, why }).toEqual({ up: true, why: "" });
      const browser = Bun.spawn(
        [
          chromium!,
          ...CHROMIUM_ARGS,
          `--user-data-dir=${join(dir, "profile")}`,
          "--virtual-time-budget=20000",
          "--dump-dom",
          `http://localhost:${port}/`,
        ],
        { stdout: "pipe", stderr: "pipe" },
      );
      const dom = await new Response(browser.stdout).text();
      await browser.exited;
      for (const table of ["master_keys", "oauth_tokens", "audit_logs", "policies"])
        expect({ table, listed: dom.includes(table) }).toEqual({ table, listed: true });
    } finally {
      studio.kill("SIGTERM");
      await studio.exited;
    }
  },
  120_000,
);
