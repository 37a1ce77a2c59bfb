/**
 * /docs really renders: headless Chromium loads Swagger UI from our server (no CDN on this
 * network), we keep a screenshot and check the rendered page lists the access-requests operation.
 * CI installs Chromium and sets CHRONOKMS_REQUIRE_BROWSER=1, so there this cannot silently skip.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, type TestDatabase } from "../support/databases.ts";
import { startTestApp, type TestApp } from "../support/app.ts";

import { CHROMIUM_ARGS, chromiumPath as chromium, requireBrowserIfAsked } from "../../scripts/lib/chromium.ts";

requireBrowserIfAsked();

let db: TestDatabase;
let t: TestApp;
const dir = mkdtempSync(join(tmpdir(), "chronokms-docs-"));
beforeAll(async () => {
  db = await createTestDatabase("pglite");
  t = await startTestApp(db, { listen: true });
}, 60_000);
afterAll(async () => {
  await t.close();
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

function runChromium(args: string[]) {
  return Bun.spawn(
    [
      chromium!,
      ...CHROMIUM_ARGS,
      `--user-data-dir=${join(dir, "profile")}`,
      "--virtual-time-budget=15000",
      "--window-size=1280,2000",
      ...args,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
}

test.skipIf(!chromium)(
  "GET /docs renders in headless Chromium and lists the access-requests operation",
  async () => {
    const shot = join(dir, "docs.png");
    const s = runChromium([`--screenshot=${shot}`, `${t.url}/docs`]);
    expect(await s.exited).toBe(0);
    const png = readFileSync(shot);
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect(png.length).toBeGreaterThan(20_000);
    if (process.env.CHRONOKMS_KEEP_SCREENSHOT) Bun.write(process.env.CHRONOKMS_KEEP_SCREENSHOT, png);

    const d = runChromium(["--dump-dom", `${t.url}/docs`]);
    const dom = await new Response(d.stdout).text();
    expect(await d.exited).toBe(0);
    expect(dom.includes('class="swagger-ui')).toBe(true);
    expect(dom.includes('data-path="/v1/access-requests"')).toBe(true);
  },
  60_000,
);
