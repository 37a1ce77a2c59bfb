/**
 * KEK rotation: rewraps every master private JWE (all statuses) from the previous KEK to the new
 * one. Each row is its own compare-and-set update on `kekId`, so a run killed midway leaves every
 * row wrapped under exactly one of the two KEKs, correctly labelled, and a rerun finishes the job.
 */
import type { AuditSink } from "../audit/types.ts";
import { unwrapPrivateJwk, wrapPrivateJwk } from "../crypto/index.ts";
import type { Database } from "../db/database.ts";
import { ConfigError, KekMismatchError } from "../errors.ts";
import { MasterKeyRepository } from "./repository.ts";

export interface KekRewrapResult {
  rewrapped: number[];
  alreadyCurrent: number[];
}

export async function rewrapKek(
  db: Database,
  from: { kek: Uint8Array; kekId: string },
  to: { kek: Uint8Array; kekId: string },
  opts: { audit?: AuditSink; actor?: string; onRow?: (version: number, outcome: "rewrapped" | "already-current") => void } = {},
): Promise<KekRewrapResult> {
  if (from.kekId === to.kekId) throw new ConfigError("MASTER_KEY_ENCRYPTION_KEY_PREVIOUS and MASTER_KEY_ENCRYPTION_KEY are the same KEK; nothing to rewrap");
  const repo = new MasterKeyRepository(db);
  const rows = await repo.list();
  // Refuse before touching anything if some row is under a third KEK.
  const foreign = rows.filter((r) => r.kekId !== from.kekId && r.kekId !== to.kekId);
  if (foreign.length > 0) {
    throw new KekMismatchError(
      `master key version(s) ${foreign.map((r) => `${r.version} (KEK ${r.kekId})`).join(", ")} are wrapped with neither the previous KEK (${from.kekId}) nor the new one (${to.kekId}); nothing was changed`,
    );
  }
  const result: KekRewrapResult = { rewrapped: [], alreadyCurrent: [] };
  for (const row of rows) {
    if (row.kekId === to.kekId) {
      result.alreadyCurrent.push(row.version);
      opts.onRow?.(row.version, "already-current");
      continue;
    }
    let jwk;
    try {
      jwk = await unwrapPrivateJwk(row.privateKeyJwe, from.kek, { version: row.version });
    } catch (e) {
      if (!(e instanceof KekMismatchError)) throw e;
      throw new KekMismatchError(
        `master key version ${row.version} is labelled with KEK ${row.kekId} but does not unwrap with MASTER_KEY_ENCRYPTION_KEY_PREVIOUS (${from.kekId}); nothing more was changed`,
      );
    }
    const jwe = await wrapPrivateJwk(jwk, to.kek, { version: row.version });
    jwk.d = "";
    if (await repo.replaceWrap(row.version, from.kekId, jwe, to.kekId)) {
      result.rewrapped.push(row.version);
      opts.onRow?.(row.version, "rewrapped");
    } else {
      // Someone else rewrapped it meanwhile (a concurrent run): fine, as long as it is now under the new KEK.
      const now = (await repo.list()).find((r) => r.version === row.version);
      if (now?.kekId !== to.kekId) throw new KekMismatchError(`master key version ${row.version} changed concurrently and is now under KEK ${now?.kekId ?? "?"}; rerun`);
      result.alreadyCurrent.push(row.version);
      opts.onRow?.(row.version, "already-current");
    }
  }
  if (opts.audit && result.rewrapped.length > 0) {
    await opts.audit.record({
      eventType: "KEK_REWRAPPED",
      actor: opts.actor ?? "system:keys",
      target: "kek",
      success: true,
      details: { fromKekId: from.kekId, toKekId: to.kekId, versions: result.rewrapped },
    });
  }
  return result;
}
