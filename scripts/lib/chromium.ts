/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser): used by the console's
 * browser tests and by `bun run console:screenshots`. Each launch gets a new, empty profile.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium as playwright, type BrowserContext, type BrowserContextOptions } from "playwright-core";

export const chromiumPath = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));

/** CI installs Chromium and sets CHRONOKMS_REQUIRE_BROWSER=1, so a browser test cannot silently skip there. */
export function requireBrowserIfAsked(): void {
  if (!chromiumPath && process.env.CHRONOKMS_REQUIRE_BROWSER === "1")
    throw new Error("CHRONOKMS_REQUIRE_BROWSER=1 but Chromium is not installed");
}

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(options: BrowserContextOptions = {}): Promise<Browser> {
  if (!chromiumPath) throw new Error("Chromium is not installed (apt-get install chromium)");
  const profile = mkdtempSync(join(tmpdir(), "chronokms-chromium-"));
  const context = await playwright.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
    ...options,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
