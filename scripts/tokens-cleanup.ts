/**
 * `bun run tokens:cleanup --older-than 30d [--dry-run]`: removes token records whose access token
 * expired before the cutoff and that cannot be refreshed (see src/tokens/cleanup.ts). Prints the
 * count; real runs are audited (TOKEN_DELETED, actor system:tokens-cleanup).
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/log.ts";
import { createRuntime } from "../src/runtime.ts";
import { systemClock } from "../src/clock.ts";
import { ValidationError } from "../src/errors.ts";
import { cleanupExpiredTokens, parseAge } from "../src/tokens/cleanup.ts";
import { runScript } from "./lib/run-script.ts";
import { createProgress } from "./lib/progress.ts";

await runScript(async () => {
  let values: { "older-than"?: string; "dry-run"?: boolean };
  try {
    ({ values } = parseArgs({
      options: { "older-than": { type: "string" }, "dry-run": { type: "boolean", default: false } },
      strict: true,
    }));
  } catch (err) {
    throw new ValidationError(`${(err as Error).message}; usage: bun run tokens:cleanup --older-than 30d [--dry-run]`);
  }
  if (!values["older-than"]) throw new ValidationError("--older-than is required, e.g. --older-than 30d");
  const olderThanMs = parseAge(values["older-than"]);
  const config = loadConfig();
  const runtime = await createRuntime(config, createLogger(config.logLevel === "info" ? "warn" : config.logLevel), {
    throughOwner: true,
    logDevKek: false,
  });
  try {
    const progress = createProgress("removing");
    const r = await cleanupExpiredTokens(
      { db: runtime.db, audit: runtime.audit, clock: systemClock },
      { olderThanMs, dryRun: values["dry-run"] ?? false, onProgress: (done, total) => progress.update(done, total) },
    );
    if (!r.dryRun && r.count > 0) progress.finish(r.count, r.count);
    console.log(
      r.dryRun
        ? `dry run: ${r.count} token record(s) expired before ${r.cutoff} would be removed`
        : `removed ${r.count} token record(s) expired before ${r.cutoff}`,
    );
  } finally {
    await runtime.close();
  }
});
