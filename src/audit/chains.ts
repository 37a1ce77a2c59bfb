/**
 * Which chains are live (a writer still appends to them) and where every chain ends. A chain whose
 * writer is gone and that is not sealed was abandoned; src/audit/seal.ts seals it.
 */
import type { Database } from "../db/database.ts";
import { CHAIN_LOCK_CLASS } from "./chain.ts";
import type { AuditTx } from "./types.ts";

/** Chains held by live writers of this process, per database (PGlite has no other process). */
const liveInProcess = new WeakMap<Database, Set<string>>();

export function liveSet(db: Database): Set<string> {
  let s = liveInProcess.get(db);
  if (!s) {
    s = new Set();
    liveInProcess.set(db, s);
  }
  return s;
}

/** Test hook for PGlite (one process): forget that a writer of this process holds `chainId`, as its process exiting would. */
export function forgetWriterForTests(db: Database, chainId: string): void {
  liveSet(db).delete(chainId);
}

/** Which of `chainIds` a live writer holds: this process's writers, and on PostgreSQL any session holding the chain lock. */
export async function liveChains(db: Database, chainIds: string[]): Promise<Set<string>> {
  // The embedded database shared with another process (the service and a script on its owner
  // socket): one PGlite backend serves both, so no lock tells whose chain is live. Then no chain
  // is called abandoned; the owner judges tails once the script has gone.
  if (db.kind === "pglite" && db.othersAttached?.()) return new Set(chainIds);
  const own = liveSet(db);
  const out = new Set(chainIds.filter((c) => own.has(c)));
  const rest = chainIds.filter((c) => !own.has(c));
  if (db.kind === "postgres" && rest.length > 0) {
    const rows = await db.prisma.$queryRaw<Array<{ chainId: string }>>`
      SELECT c AS "chainId" FROM unnest(${rest}::text[]) AS c
      WHERE EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.classid = ${CHAIN_LOCK_CLASS}::bigint::oid AND l.objid = ((hashtext(c)::bigint + 4294967296) % 4294967296)::oid)`;
    for (const r of rows) out.add(r.chainId);
  }
  return out;
}

/** The last row of every chain (a loose index scan over (chainId, seq): one probe per chain). */
export async function chainTails(
  db: Database | AuditTx,
): Promise<Array<{ chainId: string; id: string; seq: bigint; hash: string; eventType: string; kind: string | null }>> {
  const client = "prisma" in db ? db.prisma : db;
  return client.$queryRaw`
    WITH RECURSIVE c AS (
      (SELECT "chainId" FROM audit_logs ORDER BY "chainId" LIMIT 1)
      UNION ALL
      SELECT (SELECT a."chainId" FROM audit_logs a WHERE a."chainId" > c."chainId" ORDER BY a."chainId" LIMIT 1) FROM c WHERE c."chainId" IS NOT NULL
    )
    SELECT l."chainId", l.id::text AS id, l.seq, l.hash, l."eventType", l.details->>'kind' AS kind
    FROM c CROSS JOIN LATERAL (
      SELECT a."chainId", a.id, a.seq, a.hash, a."eventType", a.details FROM audit_logs a WHERE a."chainId" = c."chainId" ORDER BY a.seq DESC LIMIT 1
    ) l WHERE c."chainId" IS NOT NULL`;
}
