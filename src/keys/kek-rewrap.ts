/**
 * KEK rotation: rewraps every master private JWE (all statuses) from the previous KEK to the new
 * one, and re-MACs its row under the new KEK's keyring-mac key. Each row is its own compare-and-set
 * update on `kekId`, committed in one transaction with its KEK_REWRAPPED audit row (when an audit
 * sink is given), so a run killed midway leaves every row wrapped under exactly one of the two
 * KEKs, correctly labelled and MAC'd, with its audit row, and a rerun finishes the job.
 */
import type { AuditSink, AuditTx } from "../audit/types.ts";
import { keyringMacKey, unwrapPrivateJwk, wrapPrivateJwk } from "../crypto/index.ts";
import type { Database } from "../db/database.ts";
import { ConfigError, KekMismatchError } from "../errors.ts";
import { MasterKeyRepository, checkPublicMatches, checkRow, type MasterKeyRow } from "./repository.ts";

export interface KekRewrapResult {
  rewrapped: number[];
  alreadyCurrent: number[];
}

/** A concurrent run rewrapped the row first: nothing to write, no audit row. */
class RewrappedMeanwhile extends Error {}

export async function rewrapKek(
  db: Database,
  from: { kek: Uint8Array; kekId: string },
  to: { kek: Uint8Array; kekId: string },
  opts: {
    audit?: AuditSink;
    actor?: string;
    onRow?: (version: number, outcome: "rewrapped" | "already-current") => void;
  } = {},
): Promise<KekRewrapResult> {
  if (from.kekId === to.kekId)
    throw new ConfigError(
      "MASTER_KEY_ENCRYPTION_KEY_PREVIOUS and MASTER_KEY_ENCRYPTION_KEY are the same KEK; nothing to rewrap",
    );
  const fromMac = keyringMacKey(from.kek);
  const toMac = keyringMacKey(to.kek);
  const repo = new MasterKeyRepository(db, toMac);
  const rows = await repo.list();
  // Refuse before touching anything if some row is under a third KEK.
  const foreign = rows.filter((r) => r.kekId !== from.kekId && r.kekId !== to.kekId);
  if (foreign.length > 0) {
    throw new KekMismatchError(
      `master key version(s) ${foreign.map((r) => `${r.version} (KEK ${r.kekId})`).join(", ")} are wrapped with neither the previous KEK (${from.kekId}) nor the new one (${to.kekId}); nothing was changed`,
    );
  }
  // Rows made before keyring MACs existed (none in the table has one) are checked by their key pair only.
  const legacy = rows.every((r) => r.keyringMac === null);
  const result: KekRewrapResult = { rewrapped: [], alreadyCurrent: [] };
  for (const row of rows) {
    if (row.kekId === to.kekId) {
      if (!legacy) await checkRow(toMac, row);
      result.alreadyCurrent.push(row.version);
      opts.onRow?.(row.version, "already-current");
      continue;
    }
    if (!legacy) await checkRow(fromMac, row);
    let jwk: Awaited<ReturnType<typeof unwrapPrivateJwk>>;
    try {
      jwk = await unwrapPrivateJwk(row.privateKeyJwe, from.kek, { version: row.version });
    } catch (e) {
      if (!(e instanceof KekMismatchError)) throw e;
      throw new KekMismatchError(
        `master key version ${row.version} is labelled with KEK ${row.kekId} but does not unwrap with MASTER_KEY_ENCRYPTION_KEY_PREVIOUS (${from.kekId}); nothing more was changed`,
      );
    }
    let jwe: string;
    try {
      await checkPublicMatches(row, jwk);
      jwe = await wrapPrivateJwk(jwk, to.kek, { version: row.version });
    } finally {
      jwk.d = "";
    }
    const change = async (tx: AuditTx) => {
      if (!(await repo.replaceWrap(tx, row, from.kekId, jwe, to.kekId))) throw new RewrappedMeanwhile();
    };
    try {
      if (opts.audit) {
        await opts.audit.apply({
          change,
          event: () => ({
            eventType: "KEK_REWRAPPED",
            actor: opts.actor ?? "system:keys",
            target: `key:v${row.version}`,
            success: true,
            details: { version: row.version, fromKekId: from.kekId, toKekId: to.kekId },
          }),
        });
      } else {
        await db.prisma.$transaction(change);
      }
      result.rewrapped.push(row.version);
      opts.onRow?.(row.version, "rewrapped");
    } catch (err) {
      if (!(err instanceof RewrappedMeanwhile)) throw err;
      // Someone else rewrapped it meanwhile (a concurrent run): fine, as long as it is now under the new KEK.
      const now = (await repo.list()).find((r) => r.version === row.version);
      if (now?.kekId !== to.kekId)
        throw new KekMismatchError(
          `master key version ${row.version} changed concurrently and is now under KEK ${now?.kekId ?? "?"}; rerun`,
        );
      result.alreadyCurrent.push(row.version);
      opts.onRow?.(row.version, "already-current");
    }
  }
  return result;
}

export type { MasterKeyRow };
