/**
 * `bun run audit:verify [--anchors FILE]`: verifies every audit chain of the configured database
 * offline: hash links, checkpoint signatures against master_keys' public keys whose keyring MAC
 * holds under the configured KEK, and the database against the anchor log (`--anchors FILE`, else
 * AUDIT_ANCHOR_FILE when it exists). One summary line, then every finding; rows/s; exit 1 when the
 * log is not intact.
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadConfig } from "../src/config.ts";
import { openDatabase } from "../src/db/database.ts";
import { verifyWithKeyring } from "../src/audit/verify.ts";
import { resolveKek } from "../src/keys/kek.ts";
import { MasterKeyRepository, loadKeyring } from "../src/keys/repository.ts";
import { keyringMacKey } from "../src/crypto/index.ts";
import { createLogger } from "../src/log.ts";
import { ConfigError } from "../src/errors.ts";
import { runScript } from "./lib/run-script.ts";

await runScript(async () => {
  const { values } = parseArgs({ options: { anchors: { type: "string" } }, strict: true });
  const config = loadConfig();
  const log = createLogger(process.env.LOG_LEVEL ? config.logLevel : "warn", { script: "audit:verify" }, (l) =>
    process.stderr.write(`${l}\n`),
  );
  if (values.anchors !== undefined && !existsSync(values.anchors))
    throw new ConfigError(`--anchors ${values.anchors}: no such file`);
  const anchorFile = values.anchors ?? config.auditAnchorFile;
  // The keyring MAC key comes from the KEK: only key rows chronokms wrote are trusted.
  const macKey = keyringMacKey(resolveKek(config, log).kek);
  const db = await openDatabase(config.database, { throughOwner: true });
  try {
    const keyring = loadKeyring(await new MasterKeyRepository(db, macKey).list(), macKey);
    const r = await verifyWithKeyring(db, { keyring, anchorFile });
    const rate = r.elapsedMs > 0 ? Math.round((r.checked * 1000) / r.elapsedMs) : r.checked;
    const anchors = anchorFile ? `, ${r.anchorsChecked} anchor(s) from ${anchorFile}` : ", no anchor log";
    const extra = `${r.checkpoints} checkpoints, ${r.unclosedChains} unclosed chain(s), ${r.unsignedTailRows} row(s) after the last checkpoint${anchors}`;
    if (r.valid) {
      console.log(
        `audit log valid: ${r.checked} rows in ${r.chains} chain(s) (${extra}); ${r.elapsedMs} ms, ${rate} rows/s`,
      );
      return 0;
    }
    console.log(
      `audit log INVALID: ${r.findings.length} finding(s) in ${r.checked} rows in ${r.chains} chain(s) (${extra}); ${r.elapsedMs} ms, ${rate} rows/s`,
    );
    const f = r.firstInvalid;
    if (f) console.log(`first broken link: chain ${f.chainId} seq ${f.seq} id ${f.id}: ${f.reason}`);
    for (const x of r.findings)
      console.log(
        `finding ${x.kind}: ${x.chainId === null ? "" : `chain ${x.chainId} `}${x.seq === undefined ? "" : `seq ${x.seq} `}${x.id === undefined ? "" : `id ${x.id} `}${x.reason}`,
      );
    return 1;
  } finally {
    await db.close();
  }
});
