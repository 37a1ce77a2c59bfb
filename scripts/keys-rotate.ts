/**
 * `bun run keys:rotate [--batch-size N] [--no-rotate] [--retire <v>] [--status]`
 *
 * With no flags: rotate (new active version, old → decrypt-only), then re-encrypt every record on an
 * older version, printing counts per version before and after. Safe to kill at any point; rerun it.
 * Rerun rule: it only rotates when no record is pending on an older version — if records are still
 * pending, an earlier rotation did not finish, so it finishes that one instead of rotating again.
 * `--no-rotate`: only re-encrypt. `--retire <v>`: only retire version v (refused while anything
 * still needs it or while it is active; the refusal names the records that still need it).
 * `--status`: only print the versions and the rotation schedule with its next due time (set with
 * `PUT /v1/keys/schedule`).
 * Token records still in the v1 envelope format are re-sealed as v2 envelopes by every run. A record
 * that does not decrypt is skipped (audited DECRYPT_FAILED) and listed; the exit status is then 1.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../src/config.ts";
import { BadRequestError } from "../src/errors.ts";
import type { KeyVersionInfo } from "../src/keys/service.ts";
import { runRewrap } from "../src/keys/rewrap.ts";
import { createLogger } from "../src/log.ts";
import { createRuntime } from "../src/runtime.ts";
import { createProgress } from "./lib/progress.ts";
import { scheduleView } from "../src/keys/schedule.ts";
import { runScript } from "./lib/run-script.ts";

const ACTOR = "script:keys-rotate";

function printVersions(title: string, versions: KeyVersionInfo[]) {
  console.log(`\n${title}`);
  const stores = [...new Set(versions.flatMap((v) => Object.keys(v.recordsByStore)))];
  console.log(["version", "status".padEnd(12), "records".padStart(9), ...stores.map((s) => s.padStart(14))].join("  "));
  for (const v of versions) {
    console.log(
      [
        String(v.version).padStart(7),
        v.status.padEnd(12),
        String(v.records).padStart(9),
        ...stores.map((s) => String(v.recordsByStore[s] ?? 0).padStart(14)),
      ].join("  "),
    );
  }
}

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^[1-9][0-9]*$/.test(value) || Number(value) > 1_000_000_000)
    throw new BadRequestError(`${name} expects a positive whole number, got "${value}"`);
  return Number(value);
}

await runScript(async () => {
  const { values } = parseArgs({
    options: {
      "batch-size": { type: "string" },
      "no-rotate": { type: "boolean" },
      retire: { type: "string" },
      status: { type: "boolean" },
    },
    strict: true,
  });
  const batchSize = Math.min(positiveInt("--batch-size", values["batch-size"], 1000), 10_000);
  const retire = values.retire === undefined ? undefined : positiveInt("--retire", values.retire, 0);

  const config = loadConfig();
  // Scripts talk to people: log lines (warnings and up unless LOG_LEVEL says otherwise) go to stderr.
  const log = createLogger(process.env.LOG_LEVEL ? config.logLevel : "warn", { script: "keys:rotate" }, (l) =>
    process.stderr.write(`${l}\n`),
  );
  const runtime = await createRuntime(config, log, { throughOwner: true, logDevKek: false });
  try {
    const keys = runtime.keys;
    const before = await keys.versions();
    if (values.status) {
      printVersions("versions:", before);
      const s = scheduleView(await runtime.schedule.get());
      console.log("\nschedule:");
      if (s.rotateEverySeconds === null) console.log("  none (set one with PUT /v1/keys/schedule)");
      else {
        console.log(`  enabled:        ${s.enabled}`);
        console.log(`  rotate every:   ${s.rotateEverySeconds} s`);
        console.log(
          `  retire after:   ${s.retireAfterSeconds === null ? "never (retire with --retire <v>)" : `${s.retireAfterSeconds} s`}`,
        );
        console.log(`  next due:       ${s.nextDueAt ?? "-"}`);
        console.log(`  last rotated:   ${s.lastRotatedAt ?? "-"}`);
        console.log(`  updated:        ${s.updatedAt} by ${s.updatedBy}`);
      }
      return 0;
    }
    printVersions("before:", before);

    if (retire !== undefined) {
      const r = await keys.retire(retire, { actor: ACTOR });
      console.log(r.alreadyRetired ? `\nversion ${retire} was already retired` : `\nversion ${retire} retired`);
      printVersions("after:", await keys.versions());
      return 0;
    }

    if (!values["no-rotate"]) {
      const active = (await keys.active()).version;
      const pending = before.filter((v) => v.version !== active).reduce((n, v) => n + v.records, 0);
      if (pending > 0) {
        console.log(
          `\n${pending} record(s) are still on versions older than the active version ${active}: an earlier rotation did not finish, so this run finishes it instead of rotating again (run keys:rotate again afterwards for another rotation)`,
        );
      } else {
        const r = await keys.rotate({ actor: ACTOR });
        console.log(
          `\nrotated: version ${r.version} is active${r.previous === null ? "" : `, version ${r.previous} is decrypt-only`}`,
        );
      }
    }

    const progress = createProgress("re-encrypting");
    const result = await runRewrap(keys, keys.rewrappables(), {
      batchSize,
      onProgress: (p) => progress.update(p.done, p.total, `→ v${p.targetVersion} ${Math.round(p.rate)}/s`),
    });
    const rate = result.moved / Math.max(result.elapsedMs / 1000, 1e-3);
    progress.finish(result.moved, result.moved + result.remaining, `→ v${result.targetVersion} ${Math.round(rate)}/s`);
    console.log(
      `\nre-encrypted ${result.moved} record(s) to version ${result.targetVersion} in ${(result.elapsedMs / 1000).toFixed(1)} s`,
    );
    printVersions("after:", await keys.versions());
    if (result.failed.length > 0) {
      // Skipped, not retried: each is audited DECRYPT_FAILED and keeps its old version from being retired.
      console.error(
        `\n${result.failed.length} record(s) do not decrypt and were skipped (audited DECRYPT_FAILED); fix or delete them, then rerun:`,
      );
      for (const f of result.failed) console.error(`  ${f.store} ${f.id} ${f.label}${f.field ? ` (${f.field})` : ""}`);
      return 1;
    }
    if (result.remaining > 0) {
      console.error(
        `\n${result.remaining} record(s) still need re-sealing (concurrent writers kept changing or holding them); run keys:rotate --no-rotate again`,
      );
      return 1;
    }
    return 0;
  } finally {
    await runtime.close();
  }
});
