/** Serves the app with Bun.serve and shuts down gracefully on SIGTERM/SIGINT. */
import { createApp } from "./app.ts";
import { createRuntime, type Runtime } from "./runtime.ts";
import { tokenRepository } from "./tokens/repository.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import type { Clock } from "./clock.ts";
import { createRotationScheduler } from "./keys/scheduler.ts";
import { metricsListenerApp } from "./http/routes/metrics.ts";
import { ConfigError } from "./errors.ts";

export interface RunningServer {
  url: string;
  /** The unauthenticated metrics listener's /metrics URL, when METRICS_PORT is set. */
  metricsUrl?: string;
  runtime: Runtime;
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** Time for every service (tests drive the rotation schedule with it). */
  clock?: Clock;
  /** How often the rotation scheduler looks at the schedule (default 5000 ms) and its re-encryption batch size (500). */
  scheduler?: { intervalMs?: number; batchSize?: number };
}

/** A listen failure as one line naming the cause and the fix (index.ts prints ChronoErrors without a stack). */
function listenError(err: unknown, host: string, port: number, vars = "PORT"): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `${host}:${port}`;
  if (code === "EADDRINUSE")
    return new ConfigError(
      `cannot listen on ${where}: the port is already in use (another chronokms or another program); stop it, or set ${vars} to a free port`,
    );
  if (code === "EACCES")
    return new ConfigError(
      `cannot listen on ${where}: permission denied (ports below 1024 need privileges); set ${vars} to 1024 or above`,
    );
  if (code === "EADDRNOTAVAIL")
    return new ConfigError(
      `cannot listen on ${where}: no such address on this machine; set ${vars === "PORT" ? "HOST" : "METRICS_HOST"} to one of its addresses, e.g. 127.0.0.1 or 0.0.0.0`,
    );
  return err;
}

export async function startServer(config: Config, log: Logger, opts: ServerOptions = {}): Promise<RunningServer> {
  const runtime = await createRuntime(config, log, { clock: opts.clock });
  const app = createApp(runtime.appDeps());
  runtime.webhooks.start(); // the service delivers webhooks; scripts that build a runtime do not
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: config.host,
      port: config.port,
      fetch: app.fetch,
      // Bodies are capped by our own middleware with a clear 413; this is a backstop.
      maxRequestBodySize: Math.max(config.bodyLimitBytes * 2, 1024 * 1024),
    });
  } catch (err) {
    await runtime.close(); // releases the embedded database's lock and writes the audit checkpoint
    throw listenError(err, config.host, config.port);
  }
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}`;
  log.info("listening", { url, database: runtime.db.description });
  let metricsServer: ReturnType<typeof Bun.serve> | undefined;
  let metricsUrl: string | undefined;
  if (config.metricsListener) {
    const { host, port } = config.metricsListener;
    try {
      metricsServer = Bun.serve({ hostname: host, port, fetch: metricsListenerApp(runtime.metrics).fetch });
    } catch (err) {
      server.stop(true);
      await runtime.close();
      throw listenError(err, host, port, "METRICS_PORT");
    }
    metricsUrl = `http://${host.includes(":") ? `[${host}]` : host}:${metricsServer.port}/metrics`;
    log.info("metrics listening (no authentication)", { url: metricsUrl });
  }
  const stopWarming = tokenRepository(runtime.db).warmCache(); // the embedded owner's row cache; scripts skip it
  const scheduler = createRotationScheduler({
    db: runtime.db,
    keys: runtime.keys,
    schedule: runtime.schedule,
    audit: runtime.audit,
    clock: runtime.clock,
    log: log.child({ component: "scheduler" }),
    ...opts.scheduler,
  });
  scheduler.start();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info("shutting down: no new connections, finishing in-flight requests");
      const grace = new Promise<void>((r) => setTimeout(r, config.shutdownGraceMs).unref());
      await Promise.race([server.stop(false), grace]);
      server.stop(true);
      metricsServer?.stop(true);
      await scheduler.stop();
      await stopWarming();
      await runtime.close();
      log.info("stopped");
    })());
  return { url, metricsUrl, runtime, stop };
}
