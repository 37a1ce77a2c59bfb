/**
 * Sealing abandoned chains: a chain no live writer holds (its process crashed, its connection was
 * lost, or one of its batches failed with an uncertain outcome) and that does not end on a sealing
 * checkpoint gets a signed `recovery` checkpoint naming its last row, so verification can tell its
 * tail is complete. Rare, so it goes through Prisma, one short transaction per chain.
 */
import type { Clock } from "../clock.ts";
import type { Database } from "../db/database.ts";
import type { Logger } from "../log.ts";
import { batchStatement } from "./batch-statement.ts";
import { CHAIN_LOCK_CLASS, SEALING_KINDS, type CheckpointSigner } from "./chain.ts";
import { chainTails } from "./chains.ts";
import { appendRow, checkpointEvent, signCheckpoint, type ChainState, type Row } from "./rows.ts";

export interface SealOptions {
  db: Database;
  clock: Clock;
  log: Logger;
  signer: CheckpointSigner | undefined;
  writeTimeoutMs: number;
  /** Chains this process's writers hold. */
  live: ReadonlySet<string>;
}

const sealed = (eventType: string, kind: string | null) =>
  eventType === "AUDIT_CHECKPOINT" && kind !== null && SEALING_KINDS.has(kind);

/** Seals every abandoned chain; returns the recovery checkpoint rows written. A chain that fails is logged and left for the next sweep. */
export async function sealAbandonedChains(o: SealOptions): Promise<Row[]> {
  const { db, live } = o;
  // While another process shares the embedded database, its live chain would look abandoned here
  // (and its lock would be ours). Sealed later, by the owner, once it is alone.
  if (db.kind === "pglite" && db.othersAttached?.()) return [];
  const tails = (await chainTails(db)).filter((t) => !sealed(t.eventType, t.kind) && !live.has(t.chainId));
  const out: Row[] = [];
  for (const t of tails) {
    try {
      const row = await db.prisma.$transaction(
        async (tx) => {
          await tx.$queryRaw`SELECT set_config('statement_timeout', ${String(o.writeTimeoutMs)}, true), set_config('lock_timeout', ${String(o.writeTimeoutMs)}, true)`;
          // A live writer (another process) holds its chain's session lock: then it is not ours to seal.
          const [lock] = await tx.$queryRaw<
            Array<{ ok: boolean }>
          >`SELECT pg_try_advisory_xact_lock(${CHAIN_LOCK_CLASS}::int, hashtext(${t.chainId})) AS ok`;
          if (!lock?.ok || live.has(t.chainId)) return null;
          const [last] = await tx.$queryRaw<
            Array<{ id: string; seq: bigint; hash: string; eventType: string; kind: string | null }>
          >`
            SELECT id::text AS id, seq, hash, "eventType", details->>'kind' AS kind FROM audit_logs WHERE "chainId" = ${t.chainId} ORDER BY seq DESC LIMIT 1`;
          if (!last || sealed(last.eventType, last.kind)) return null;
          const c: ChainState = { id: t.chainId, seq: Number(last.seq), head: last.hash, since: 0, signedAt: 0 };
          const details = await signCheckpoint(o.signer, {
            chainId: c.id,
            seq: c.seq,
            headHash: c.head,
            kind: "recovery",
            lastRowId: last.id,
          });
          const r = appendRow(c, checkpointEvent(c.id, details), o.clock.now());
          const s = batchStatement([r], [], undefined);
          await tx.$executeRawUnsafe(s.text, ...s.values);
          return r;
        },
        { maxWait: o.writeTimeoutMs, timeout: o.writeTimeoutMs * 2 },
      );
      if (row) {
        out.push(row);
        o.log.warn("sealed an abandoned audit chain with a recovery checkpoint", {
          chainId: t.chainId,
          lastSeq: row.seq - 1,
        });
      }
    } catch (err) {
      o.log.error("could not seal an abandoned audit chain; will retry", { chainId: t.chainId, err });
    }
  }
  return out;
}
