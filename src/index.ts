/** Process entry point: parse config once, start the server, stop cleanly on signals. */
import { loadConfig } from "./config.ts";
import { createLogger } from "./log.ts";
import { startServer } from "./server.ts";
import { isExpectedError } from "./errors.ts";

async function main() {
  const config = loadConfig();
  const log = createLogger(config.logLevel, { service: "chronokms" });
  const running = await startServer(config, log);
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      running.stop().then(
        () => process.exit(0),
        (err) => {
          log.error("shutdown failed", { err });
          process.exit(1);
        },
      );
    });
  }
}

main().catch((err) => {
  // Startup refusals (bad config, wrong KEK…) are one clear line, not a stack trace.
  if (isExpectedError(err)) console.error(`chronokms: ${err.message}`);
  else console.error("chronokms: failed to start:", err);
  process.exit(1);
});
