/**
 * `bun run audit:verify`: verifies every audit chain of the configured database offline (hash
 * links and checkpoint signatures against master_keys' public keys). One summary line, the first
 * broken link if any, rows/s; exit 1 when the log is not intact.
 */
import { loadConfig } from "../src/config.ts";
import { openDatabase } from "../src/db/database.ts";
import { loadMasterPublicKeys, verifyAuditLog } from "../src/audit/verify.ts";
import { runScript } from "./lib/run-script.ts";

await runScript(async () => {
  const config = loadConfig();
  const db = await openDatabase(config.database, { throughOwner: true });
  try {
    const r = await verifyAuditLog(db, { publicKeys: await loadMasterPublicKeys(db) });
    const rate = r.elapsedMs > 0 ? Math.round((r.checked * 1000) / r.elapsedMs) : r.checked;
    const extra = `${r.checkpoints} checkpoints, ${r.unclosedChains} unclosed chain(s), ${r.unsignedTailRows} row(s) after the last checkpoint`;
    if (r.valid) {
      console.log(`audit log valid: ${r.checked} rows in ${r.chains} chain(s) (${extra}); ${r.elapsedMs} ms, ${rate} rows/s`);
      return 0;
    }
    const f = r.firstInvalid!;
    console.log(`audit log INVALID after ${r.checked} rows in ${r.chains} chain(s); ${r.elapsedMs} ms, ${rate} rows/s`);
    console.log(`first broken link: chain ${f.chainId} seq ${f.seq} id ${f.id}: ${f.reason}`);
    return 1;
  } finally {
    await db.close();
  }
});
