/**
 * Reading the audit log: filtered listing with an opaque keyset cursor (newest first: timestamp
 * desc, then id desc), and counts for a time window. JSON shape: bigint columns become numbers
 * (ms timestamps and in-chain seq are far below 2^53), details stay JSON, createdAt is ISO-8601.
 */
import { Prisma } from "../db/generated/client.ts";
import type { Database } from "../db/database.ts";
import { decodeCursor, encodeCursor, olderThan, type Page, pageOf } from "../lib/keyset-cursor.ts";

export const MAX_LIST_LIMIT = 500;

export interface AuditWindow {
  /** Inclusive lower bound, epoch ms. */
  from?: number;
  /** Exclusive upper bound, epoch ms. */
  to?: number;
}

export interface AuditListQuery extends AuditWindow {
  eventType?: string;
  actor?: string;
  cursor?: string;
  limit: number;
}

export interface AuditLogItem {
  id: string;
  chainId: string;
  seq: number;
  timestamp: number;
  eventType: string;
  actor: string;
  target: string | null;
  startTime: number | null;
  endTime: number | null;
  success: boolean;
  details: unknown;
  prevHash: string;
  hash: string;
  createdAt: string;
}

/** Newest first: `nextCursor` continues with older rows. */
export type AuditPage = Page<AuditLogItem>;

export interface AuditStats {
  total: number;
  byEventType: Record<string, number>;
  bySuccess: { success: number; failure: number };
  /** Distinct writer chains with rows in the window. */
  chains: number;
}

function windowWhere(w: AuditWindow): Prisma.AuditLogWhereInput {
  if (w.from === undefined && w.to === undefined) return {};
  return {
    timestamp: {
      ...(w.from !== undefined ? { gte: BigInt(w.from) } : {}),
      ...(w.to !== undefined ? { lt: BigInt(w.to) } : {}),
    },
  };
}

export async function listAuditLogs(db: Database, q: AuditListQuery): Promise<AuditPage> {
  const limit = Math.min(Math.max(1, q.limit), MAX_LIST_LIMIT);
  const and: Prisma.AuditLogWhereInput[] = [windowWhere(q)];
  if (q.eventType !== undefined) and.push({ eventType: q.eventType });
  if (q.actor !== undefined) and.push({ actor: q.actor });
  if (q.cursor !== undefined) {
    const c = decodeCursor(q.cursor);
    and.push(olderThan("timestamp", BigInt(c.timeMs), c.id));
  }
  const rows = await db.prisma.auditLog.findMany({
    where: { AND: and },
    orderBy: [{ timestamp: "desc" }, { id: "desc" }],
    take: limit + 1,
  });
  return pageOf(
    rows,
    limit,
    (r) => ({
      id: r.id,
      chainId: r.chainId,
      seq: Number(r.seq),
      timestamp: Number(r.timestamp),
      eventType: r.eventType,
      actor: r.actor,
      target: r.target,
      startTime: r.startTime === null ? null : Number(r.startTime),
      endTime: r.endTime === null ? null : Number(r.endTime),
      success: r.success,
      details: r.details,
      prevHash: r.prevHash,
      hash: r.hash,
      createdAt: r.createdAt.toISOString(),
    }),
    (last) => encodeCursor(Number(last.timestamp), last.id),
  );
}

export async function auditStats(db: Database, w: AuditWindow = {}): Promise<AuditStats> {
  const where = windowWhere(w);
  const conds: Prisma.Sql[] = [];
  if (w.from !== undefined) conds.push(Prisma.sql`"timestamp" >= ${String(w.from)}::bigint`);
  if (w.to !== undefined) conds.push(Prisma.sql`"timestamp" < ${String(w.to)}::bigint`);
  const whereSql = conds.length ? Prisma.sql`WHERE ${Prisma.join(conds, " AND ")}` : Prisma.empty;
  const [byType, bySuccess, chains] = await Promise.all([
    db.prisma.auditLog.groupBy({ by: ["eventType"], where, _count: { _all: true } }),
    db.prisma.auditLog.groupBy({ by: ["success"], where, _count: { _all: true } }),
    db.prisma.$queryRaw<
      Array<{ chains: bigint | number }>
    >`SELECT count(DISTINCT "chainId") AS chains FROM "audit_logs" ${whereSql}`,
  ]);
  const byEventType: Record<string, number> = {};
  let total = 0;
  for (const g of byType) {
    byEventType[g.eventType] = g._count._all;
    total += g._count._all;
  }
  const count = (s: boolean) => bySuccess.find((g) => g.success === s)?._count._all ?? 0;
  return {
    total,
    byEventType,
    bySuccess: { success: count(true), failure: count(false) },
    chains: Number(chains[0]?.chains ?? 0),
  };
}
