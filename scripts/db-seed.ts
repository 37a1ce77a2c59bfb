/**
 * `bun run db:seed`: the master key if there is none (exactly as the service makes it), default
 * policies, demo requesters with API keys (printed once, as `export` lines) and a few demo token
 * records. Idempotent: a second run finds everything, writes nothing and says so. On the embedded
 * database it works through the running service when there is one (src/db/owner-socket.ts).
 */
import { loadConfig } from "../src/config.ts";
import { ConfigError } from "../src/errors.ts";
import { createLogger } from "../src/log.ts";
import { createRuntime } from "../src/runtime.ts";
import { formatSeedReport, seedDemo } from "./lib/seed.ts";
import { runScript } from "./lib/run-script.ts";

await runScript(async () => {
  const config = loadConfig();
  if (config.isProduction) {
    throw new ConfigError(
      "db:seed refuses NODE_ENV=production: it creates demo requesters and prints their API keys; create real ones with POST /v1/requesters",
    );
  }
  // Scripts talk to people: log lines (warnings and up unless LOG_LEVEL says otherwise) go to stderr.
  const log = createLogger(process.env.LOG_LEVEL ? config.logLevel : "warn", { script: "db:seed" }, (l) =>
    process.stderr.write(`${l}\n`),
  );
  const startedAt = Date.now();
  const runtime = await createRuntime(config, log, { throughOwner: true, logDevKek: false });
  try {
    const report = await seedDemo(runtime, startedAt);
    const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
    console.log(formatSeedReport(report, `http://${host.includes(":") ? `[${host}]` : host}:${config.port}`));
  } finally {
    await runtime.close();
  }
});
