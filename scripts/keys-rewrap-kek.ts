/**
 * `bun run keys:rewrap-kek`: rewraps every master private key from MASTER_KEY_ENCRYPTION_KEY_PREVIOUS
 * to MASTER_KEY_ENCRYPTION_KEY. Running services keep working (their keys are already in memory);
 * restart them with the new KEK afterwards. Safe to kill and rerun: each row moves atomically.
 */
import { loadConfig } from "../src/config.ts";
import { openDatabase } from "../src/db/database.ts";
import { rewrapKek } from "../src/keys/kek-rewrap.ts";
import { resolveKek, resolvePreviousKek } from "../src/keys/kek.ts";
import { createLogger } from "../src/log.ts";
import { runScript } from "./lib/run-script.ts";
import { createProgress } from "./lib/progress.ts";

await runScript(async () => {
  const config = loadConfig();
  const log = createLogger(process.env.LOG_LEVEL ? config.logLevel : "warn", { script: "keys:rewrap-kek" }, (l) => process.stderr.write(`${l}\n`));
  const from = resolvePreviousKek(config);
  const to = resolveKek(config, log, undefined, { logDevKek: false });
  const db = await openDatabase(config.database, { throughOwner: true });
  try {
    console.log(`rewrapping master keys from KEK ${from.kekId} to KEK ${to.kekId} (${db.description})`);
    const total = await db.prisma.masterKey.count();
    const progress = createProgress("rewrapping");
    let done = 0;
    const r = await rewrapKek(db, from, to, {
      actor: "script:keys-rewrap-kek",
      onRow: (v, outcome) => {
        console.log(`  version ${v}: ${outcome === "rewrapped" ? "rewrapped" : "already under the new KEK"}`);
        progress.update(++done, Math.max(total, done));
      },
    });
    progress.finish(done, Math.max(total, done));
    console.log(`done: ${r.rewrapped.length} rewrapped, ${r.alreadyCurrent.length} already under the new KEK. Restart services with MASTER_KEY_ENCRYPTION_KEY=<new KEK>; the previous KEK is no longer needed.`);
  } finally {
    await db.close();
  }
});
