/**
 * The read side of webhooks as the API shows them: the list with delivery counts (never the
 * secret) and a webhook's deliveries, both paged like every list (src/lib/keyset-cursor.ts).
 */
import type { Database } from "../db/database.ts";
import { NotFoundError } from "../errors.ts";
import {
  decodeCursor,
  decodeIdCursor,
  encodeCursor,
  encodeIdCursor,
  olderThan,
  type Page,
  pageOf,
} from "../lib/keyset-cursor.ts";

export interface WebhookView {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  enabled: boolean;
  createdAt: string;
  createdBy: string;
  deliveries: {
    pending: number;
    delivered: number;
    failed: number;
    lastDeliveredAt: string | null;
    lastError: string | null;
  };
}

export interface DeliveryView {
  id: string;
  eventId: string;
  eventType: string;
  status: string;
  attempts: number;
  nextAttemptAt: string | null;
  lastAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  createdAt: string;
}

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

/** Webhooks oldest first (uuid v7 order), each with its delivery counts. */
export async function listWebhooks(db: Database, q: { limit: number; cursor?: string }): Promise<Page<WebhookView>> {
  const rows = await db.prisma.webhook.findMany({
    ...(q.cursor !== undefined ? { where: { id: { gt: decodeIdCursor(q.cursor) } } } : {}),
    orderBy: { id: "asc" },
    take: q.limit + 1,
  });
  const page = pageOf(
    rows,
    q.limit,
    (r) => r,
    (last) => encodeIdCursor(last.id),
  );
  return { items: await Promise.all(page.items.map((r) => webhookView(db, r))), nextCursor: page.nextCursor };
}

/** A webhook's deliveries, newest first. */
export async function listDeliveries(
  db: Database,
  id: string,
  q: { status?: string; limit: number; cursor?: string },
): Promise<Page<DeliveryView>> {
  if (!(await db.prisma.webhook.findUnique({ where: { id }, select: { id: true } })))
    throw new NotFoundError("webhook");
  const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
  const rows = await db.prisma.webhookDelivery.findMany({
    where: {
      webhookId: id,
      ...(q.status ? { status: q.status } : {}),
      ...(after ? olderThan("createdAt", new Date(after.timeMs), after.id) : {}),
    },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: q.limit + 1,
  });
  const view = (r: (typeof rows)[number]): DeliveryView => ({
    id: r.id,
    eventId: r.eventId,
    eventType: r.eventType,
    status: r.status,
    attempts: r.attempts,
    nextAttemptAt: r.status === "pending" ? r.nextAttemptAt.toISOString() : null,
    lastAttemptAt: iso(r.lastAttemptAt),
    lastStatus: r.lastStatus,
    lastError: r.lastError,
    deliveredAt: iso(r.deliveredAt),
    createdAt: r.createdAt.toISOString(),
  });
  return pageOf(rows, q.limit, view, (last) => encodeCursor(last.createdAt.getTime(), last.id));
}

/** A webhook as the API shows it: never the secret; delivery counts and the last outcome. */
export async function webhookView(
  db: Database,
  r: {
    id: string;
    url: string;
    events: string[];
    description: string | null;
    enabled: boolean;
    createdAt: Date;
    createdBy: string;
  },
): Promise<WebhookView> {
  const counts = await db.prisma.webhookDelivery.groupBy({
    by: ["status"],
    where: { webhookId: r.id },
    _count: { _all: true },
  });
  const n = (s: string) => counts.find((c) => c.status === s)?._count._all ?? 0;
  const last = await db.prisma.webhookDelivery.findFirst({
    where: { webhookId: r.id, lastAttemptAt: { not: null } },
    orderBy: { lastAttemptAt: "desc" },
  });
  const lastDelivered = await db.prisma.webhookDelivery.findFirst({
    where: { webhookId: r.id, status: "delivered" },
    orderBy: { deliveredAt: "desc" },
  });
  return {
    id: r.id,
    url: r.url,
    events: r.events,
    description: r.description,
    enabled: r.enabled,
    createdAt: r.createdAt.toISOString(),
    createdBy: r.createdBy,
    deliveries: {
      pending: n("pending"),
      delivered: n("delivered"),
      failed: n("failed"),
      lastDeliveredAt: iso(lastDelivered?.deliveredAt ?? null),
      lastError: last?.lastError ?? null,
    },
  };
}
