/**
 * `bun run console:screenshots`: refreshes the README's console screenshots
 * (docs/console/{overview,policies,audit}.png). Starts the service on an in-memory database with a
 * throwaway KEK and admin key, creates demo data through the public API, then drives Debian's
 * Chromium (playwright-core) through the console as an administrator would.
 */
import { join, resolve } from "node:path";
import { mkdirSync } from "node:fs";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/log.ts";
import { startServer } from "../src/server.ts";
import { generateApiKey } from "../src/access/api-key-format.ts";
import { ChronoKmsClient } from "../src/client/api.ts";
import { launchChromium } from "./lib/chromium.ts";

const outDir = resolve(import.meta.dir, "../docs/console");
mkdirSync(outDir, { recursive: true });

const admin = generateApiKey().apiKey;
const kek = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
const config = loadConfig({
  NODE_ENV: "test",
  LOG_LEVEL: "silent",
  DATABASE_URL: "memory://",
  MASTER_KEY_ENCRYPTION_KEY: kek,
  PORT: "0",
  BOOTSTRAP_ADMIN_KEY: admin,
});
const server = await startServer(config, createLogger("silent"));
try {
  await seedDemo(server.url, admin);
  const browser = await launchChromium({ viewport: { width: 1280, height: 800 } });
  try {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/console`);
    await page.fill("#signin-key", admin);
    await page.click("button[type=submit]");
    await page.waitForSelector('[data-card="decisions"]');
    await page.click("text=Verify audit log");
    await page.waitForSelector(".verification");
    await page.screenshot({ path: join(outDir, "overview.png"), fullPage: true });

    await page.click('nav a[href="#/policies"]');
    await page.waitForSelector("tr[data-policy-name]");
    const sim = page.locator(".simulation-slot").locator("..");
    await sim.getByLabel("Requester id").fill("billing-service");
    await sim.getByRole("button", { name: "Simulate" }).click();
    await page.waitForSelector(".simulation");
    await page.screenshot({ path: join(outDir, "policies.png"), fullPage: true });

    await page.click('nav a[href="#/audit"]');
    await page.waitForSelector("tr[data-event-type]");
    await page.click("text=Verify audit log");
    await page.waitForSelector(".verification");
    await page.screenshot({ path: join(outDir, "audit.png"), fullPage: false });
    console.log(`wrote ${["overview", "policies", "audit"].map((n) => join("docs/console", `${n}.png`)).join(", ")}`);
  } finally {
    await browser.close();
  }
} finally {
  await server.stop();
}

/** Demo data through the public API: requesters, keys, policies, tokens, decisions, a rotation. */
async function seedDemo(baseUrl: string, adminKey: string) {
  const api = new ChronoKmsClient({ baseUrl, apiKey: adminKey });
  const billing = await api.createRequester({
    requesterId: "billing-service",
    name: "Billing service",
    department: "finance",
    email: "billing@example.com",
  });
  const analytics = await api.createRequester({
    requesterId: "analytics-bot",
    name: "Analytics bot",
    department: "analytics",
  });
  const callback = await api.createRequester({
    requesterId: "oauth-callback",
    name: "OAuth callback",
    department: "platform",
  });
  const billingKey = (await api.createApiKey(billing.id, { roles: ["reader"], name: "billing-prod" })).apiKey;
  const analyticsKey = (await api.createApiKey(analytics.id, { roles: ["reader"], name: "nightly-job" })).apiKey;
  const writerKey = (await api.createApiKey(callback.id, { roles: ["writer"], name: "callback" })).apiKey;
  await api.createPolicy({
    name: "finance may read",
    type: "whitelist",
    priority: 10,
    config: { departments: ["finance"] },
    description: "Admits every requester in the finance department",
  });
  await api.createPolicy({
    name: "at most one day per request",
    type: "duration-limit",
    priority: 5,
    config: { maxSeconds: 86_400 },
  });
  await api.createPolicy({
    name: "state a purpose",
    type: "purpose",
    priority: 1,
    enabled: false,
    config: { minLength: 3 },
    description: "Draft: not enforced yet",
  });
  const writer = new ChronoKmsClient({ baseUrl, apiKey: writerKey });
  for (const user of ["user-17", "user-42", "user-88"]) {
    await writer.putToken("gmail", user, {
      accessToken: `demo-access-${user}`,
      refreshToken: `demo-refresh-${user}`,
      expiresAt: Date.now() + 3_600_000,
      scope: "mail.read",
    });
  }
  await api.rotateKeys();
  const now = Date.now();
  const reader = new ChronoKmsClient({ baseUrl, apiKey: billingKey, retries: 1 });
  const other = new ChronoKmsClient({ baseUrl, apiKey: analyticsKey, retries: 1 });
  for (let i = 0; i < 6; i++)
    await reader.requestAccess({
      resource: { type: "timeslice" },
      timeRange: { start: now - (i + 1) * 3_600_000, end: now - i * 3_600_000 },
    });
  for (let i = 0; i < 2; i++)
    await other
      .requestAccess({ resource: { type: "timeslice" }, timeRange: { start: now - 3_600_000, end: now } })
      .catch(() => {});
  await reader
    .requestAccess({ resource: { type: "timeslice" }, timeRange: { start: now - 3 * 86_400_000, end: now } })
    .catch(() => {});
}
