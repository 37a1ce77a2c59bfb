/**
 * Test harness: the real service (`startServer`) with a clock the test moves from outside the
 * process. The clock is the wall clock plus the offset (ms) written in CHRONOKMS_TEST_CLOCK_FILE,
 * so several processes share one controlled time. The scheduler looks every 200 ms.
 */
import { readFileSync } from "node:fs";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { startServer } from "../../src/server.ts";

const file = process.env.CHRONOKMS_TEST_CLOCK_FILE;
if (!file) throw new Error("CHRONOKMS_TEST_CLOCK_FILE is required");
let offset = 0;
let readAt = -Infinity;
const clock = {
  now() {
    const t = performance.now();
    if (t - readAt > 20) {
      readAt = t;
      offset = Number(readFileSync(file, "utf8").trim()) || 0;
    }
    return Date.now() + offset;
  },
};

const config = loadConfig();
const log = createLogger(config.logLevel, { service: "chronokms", pid: process.pid });
const running = await startServer(config, log, {
  clock,
  scheduler: { intervalMs: 200, batchSize: Number(process.env.TEST_SCHEDULER_BATCH ?? 100) },
});
for (const signal of ["SIGTERM", "SIGINT"] as const)
  process.on(signal, () => void running.stop().then(() => process.exit(0)));
