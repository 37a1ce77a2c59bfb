/**
 * The signed heads of every chain: each chain's last signed checkpoint, in the anchor log's entry
 * format, so an external monitor can keep `GET /v1/audit-logs/head` answers as its own anchor file
 * and later hand them to `audit:verify --anchors`.
 */
import type { Database } from "../db/database.ts";
import type { AnchorEntry } from "./anchors.ts";
import { anchorEntryOf } from "./anchors.ts";

export async function signedHeads(db: Database): Promise<AnchorEntry[]> {
  const rows = await db.prisma.$queryRaw<
    Array<{ chainId: string; seq: bigint; hash: string; details: unknown; createdAt: Date }>
  >`
    WITH RECURSIVE c AS (
      (SELECT "chainId" FROM audit_logs ORDER BY "chainId" LIMIT 1)
      UNION ALL
      SELECT (SELECT a."chainId" FROM audit_logs a WHERE a."chainId" > c."chainId" ORDER BY a."chainId" LIMIT 1) FROM c WHERE c."chainId" IS NOT NULL
    )
    SELECT l."chainId", l.seq, l.hash, l.details, l."createdAt"
    FROM c CROSS JOIN LATERAL (
      SELECT a."chainId", a.seq, a.hash, a.details, a."createdAt" FROM audit_logs a
      WHERE a."chainId" = c."chainId" AND a."eventType" = 'AUDIT_CHECKPOINT' ORDER BY a.seq DESC LIMIT 1
    ) l WHERE c."chainId" IS NOT NULL`;
  return rows.flatMap((r) => {
    const e = anchorEntryOf({ chainId: r.chainId, seq: Number(r.seq), hash: r.hash, details: r.details });
    return e ? [{ ...e, at: r.createdAt.toISOString() }] : [];
  });
}
