/** Builds the real app for tests: in-process (`app.request`) or over a real loopback port. */
import { loadConfig, type Config } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { createRuntime, type Runtime } from "../../src/runtime.ts";
import { createApp, type App } from "../../src/app.ts";
import type { Database } from "../../src/db/database.ts";

/** A fixed KEK for tests (never use a literal KEK anywhere else). */
export const TEST_KEK = "a3f1c2e4b5d6978812aa34bc56de78f09a1b2c3d4e5f60718293a4b5c6d7e8f9";

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    DATABASE_URL: "memory://",
    MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
    PORT: "0",
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
export async function startTestApp(db: Database, opts: { env?: Record<string, string>; listen?: boolean } = {}): Promise<TestApp> {
  const config = testConfig(opts.env);
  const runtime = await createRuntime(config, createLogger(config.logLevel), { db, migrate: false, ownsDb: false });
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
