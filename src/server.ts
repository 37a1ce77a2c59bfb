/** Serves the app with Bun.serve and shuts down gracefully on SIGTERM/SIGINT. */
import { createApp } from "./app.ts";
import { createRuntime, type Runtime } from "./runtime.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";

export interface RunningServer {
  url: string;
  runtime: Runtime;
  stop(): Promise<void>;
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const runtime = await createRuntime(config, log);
  const app = createApp(runtime.appDeps());
  const server = Bun.serve({
    hostname: config.host,
    port: config.port,
    fetch: app.fetch,
    // Bodies are capped by our own middleware with a clear 413; this is a backstop.
    maxRequestBodySize: Math.max(config.bodyLimitBytes * 2, 1024 * 1024),
  });
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}`;
  log.info("listening", { url, database: runtime.db.description });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info("shutting down: no new connections, finishing in-flight requests");
      const grace = new Promise<void>((r) => setTimeout(r, config.shutdownGraceMs).unref());
      await Promise.race([server.stop(false), grace]);
      server.stop(true);
      await runtime.close();
      log.info("stopped");
    })());
  return { url, runtime, stop };
}
