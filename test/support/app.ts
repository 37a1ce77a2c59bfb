/** Builds the real app for tests: in-process (`app.request`) or over a real loopback port. */
import { loadConfig, type Config } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { createRuntime, type Runtime, type RuntimeOptions } from "../../src/runtime.ts";
import { createApp, type App } from "../../src/app.ts";
import type { Database } from "../../src/db/database.ts";
import type { Clock } from "../../src/clock.ts";
import type { Resolver } from "../../src/proxy/address.ts";
import { BOOTSTRAP_REQUESTER_ID, checkBootstrapKey } from "../../src/access/bootstrap.ts";

/**
 * The admin API key every test app is bootstrapped with (BOOTSTRAP_ADMIN_KEY), installed when the
 * database has no admin key yet. A literal for tests only, like TEST_KEK.
 */
export const TEST_ADMIN_KEY = "ckms_nyktai4baim56cbp_koFNaS7W-UgM-MBUPEz5Gk_UzHaoTmYjeG-fVpNFdsg";

/** Request options carrying the test admin key. */
export function asAdmin(init: RequestInit = {}): RequestInit {
  return {
    ...init,
    headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${TEST_ADMIN_KEY}` },
  };
}

/**
 * Installs TEST_ADMIN_KEY directly (no audit row), for tests that build `createApp` themselves
 * and count audit rows exactly. Idempotent.
 */
export async function installTestAdmin(db: Database): Promise<void> {
  const { keyId, secretHash } = checkBootstrapKey(TEST_ADMIN_KEY);
  const requester = await db.prisma.requester.upsert({
    where: { requesterId: BOOTSTRAP_REQUESTER_ID },
    create: { requesterId: BOOTSTRAP_REQUESTER_ID, name: "Test administrator" },
    update: {},
  });
  await db.prisma.apiKey.upsert({
    where: { keyId },
    create: { keyId, secretHash, requesterId: requester.id, roles: ["admin"] },
    update: {},
  });
}

/** A fixed KEK for tests (never use a literal KEK anywhere else). */
export const TEST_KEK = "a3f1c2e4b5d6978812aa34bc56de78f09a1b2c3d4e5f60718293a4b5c6d7e8f9";

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    DATABASE_URL: "memory://",
    MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
    PORT: "0",
    BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY,
    // Tests do slice arithmetic in hours; the service's default (60 s) is tested in test/access/covered.test.ts.
    SLICE_SECONDS: "3600",
    ...env,
  });
}

export interface TestApp {
  app: App;
  runtime: Runtime;
  /** Base URL when started with `listen: true`. */
  url: string;
  close(): Promise<void>;
}

/** Builds the app on an already-open test database; the database stays open after close(). */
export async function startTestApp(
  db: Database,
  opts: {
    env?: Record<string, string>;
    listen?: boolean;
    clock?: Clock;
    resolve?: Resolver;
    auditOnStep?: RuntimeOptions["auditOnStep"];
  } = {},
): Promise<TestApp> {
  const config = testConfig(opts.env);
  const runtime = await createRuntime(config, createLogger(config.logLevel), {
    db,
    migrate: false,
    ownsDb: false,
    clock: opts.clock,
    ...(opts.resolve ? { resolve: opts.resolve } : {}),
    ...(opts.auditOnStep ? { auditOnStep: opts.auditOnStep } : {}),
  });
  const app = createApp(runtime.appDeps());
  let server: ReturnType<typeof Bun.serve> | undefined;
  if (opts.listen) server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
  return {
    app,
    runtime,
    url: server ? `http://127.0.0.1:${server.port}` : "http://in-process",
    async close() {
      await server?.stop(true);
      await runtime.close();
    },
  };
}
