/**
 * `bun run keys:rewrap-kek`: rewraps every master private key from MASTER_KEY_ENCRYPTION_KEY_PREVIOUS
 * to MASTER_KEY_ENCRYPTION_KEY, each row in one transaction with its KEK_REWRAPPED audit row.
 * Running services keep working (their keys are already in memory); restart them with the new KEK
 * afterwards. Safe to kill and rerun: each row moves atomically, with its audit row.
 */
import { loadConfig } from "../src/config.ts";
import { openDatabase } from "../src/db/database.ts";
import { rewrapKek } from "../src/keys/kek-rewrap.ts";
import { resolveKek, resolvePreviousKek } from "../src/keys/kek.ts";
import { createLogger } from "../src/log.ts";
import { createAuditWriter } from "../src/audit/writer.ts";
import { AnchorFile } from "../src/audit/anchors.ts";
import { systemClock } from "../src/clock.ts";
import { signPayload, unwrapPrivateJwk } from "../src/crypto/index.ts";
import { KeyUnavailableError } from "../src/errors.ts";
import { runScript } from "./lib/run-script.ts";
import { createProgress } from "./lib/progress.ts";

await runScript(async () => {
  const config = loadConfig();
  const log = createLogger(process.env.LOG_LEVEL ? config.logLevel : "warn", { script: "keys:rewrap-kek" }, (l) =>
    process.stderr.write(`${l}\n`),
  );
  const from = resolvePreviousKek(config);
  const to = resolveKek(config, log, undefined, { logDevKek: false });
  const db = await openDatabase(config.database, { throughOwner: true });
  try {
    // The audit chain of this run is signed by the active master key, unwrapped with whichever KEK wraps it now.
    const active = await db.prisma.masterKey.findFirst({ where: { status: "active" } });
    if (!active) throw new KeyUnavailableError("no active master key: nothing to sign this run's audit rows with");
    const signingJwk = await unwrapPrivateJwk(active.privateKeyJwe, active.kekId === to.kekId ? to.kek : from.kek, {
      version: active.version,
    });
    const audit = createAuditWriter({
      db,
      clock: systemClock,
      log,
      signer: (payload, typ) => signPayload(payload, signingJwk, { kid: String(active.version), typ }),
      checkpointEvery: config.auditCheckpointEvery,
      checkpointSeconds: config.auditCheckpointSeconds,
      writeTimeoutMs: config.auditWriteTimeoutMs,
      tickMs: 0,
      ...(config.auditAnchorFile ? { anchors: new AnchorFile(config.auditAnchorFile) } : {}),
    });
    try {
      console.log(`rewrapping master keys from KEK ${from.kekId} to KEK ${to.kekId} (${db.description})`);
      const total = await db.prisma.masterKey.count();
      const progress = createProgress("rewrapping");
      let done = 0;
      const r = await rewrapKek(db, from, to, {
        audit,
        actor: "script:keys-rewrap-kek",
        onRow: (v, outcome) => {
          console.log(`  version ${v}: ${outcome === "rewrapped" ? "rewrapped" : "already under the new KEK"}`);
          progress.update(++done, Math.max(total, done));
        },
      });
      progress.finish(done, Math.max(total, done));
      console.log(
        `done: ${r.rewrapped.length} rewrapped, ${r.alreadyCurrent.length} already under the new KEK. Restart services with MASTER_KEY_ENCRYPTION_KEY=<new KEK>; the previous KEK is no longer needed.`,
      );
    } finally {
      await audit.close();
      signingJwk.d = "";
    }
  } finally {
    await db.close();
  }
});
