/**
 * Webhook events and the outbox. Events are derived from audit rows (TOKEN_DELETED → token.deleted,
 * KEY_ROTATED → key.rotated, refresh-state transitions → token.degraded / needs_reauth / recovered)
 * and inserted into `webhook_deliveries` by the audit writer inside the transaction that writes
 * those rows, so an event exists exactly when its audit row (and the change it records) does.
 * Payloads carry identifiers, states and reasons only: never a token, secret or key.
 */
import type { Prisma } from "../db/generated/client.ts";
import { isSecretKeyName } from "../audit/event-guard.ts";

export const WEBHOOK_EVENT_TYPES = [
  "token.degraded",
  "token.needs_reauth",
  "token.recovered",
  "token.deleted",
  "key.rotated",
  "audit.verify_failed",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export interface WebhookEvent {
  id: string;
  type: WebhookEventType;
  /** ISO-8601 time of the change (its audit row's timestamp). */
  createdAt: string;
  data: Record<string, string | number | boolean | null | string[]>;
}

/** The exact body that is signed and sent: `{"id","type","createdAt","data"}`. */
export function webhookPayload(e: WebhookEvent): string {
  assertNoSecrets(e.data);
  return JSON.stringify({ id: e.id, type: e.type, createdAt: e.createdAt, data: e.data });
}

function assertNoSecrets(data: Record<string, unknown>): void {
  for (const k of Object.keys(data))
    if (isSecretKeyName(k)) throw new TypeError(`webhook payload: secret-named key ${k}`);
}

/** The audit row fields an event is derived from. */
export interface AuditRowForEvents {
  id: string;
  eventType: string;
  timestamp: number | bigint | Date;
  success: boolean;
  details: Record<string, unknown>;
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" ? v : null);

/** Which refresh states are which event (`refresh-failed` is the v1 name of `degraded`). */
const STATE_EVENTS: Record<string, WebhookEventType> = {
  degraded: "token.degraded",
  "refresh-failed": "token.degraded",
  "needs-reauth": "token.needs_reauth",
};

export function eventsFromAuditRow(row: AuditRowForEvents): WebhookEvent[] {
  const d = row.details;
  const createdAt = new Date(
    Number(row.timestamp instanceof Date ? row.timestamp.getTime() : row.timestamp),
  ).toISOString();
  const make = (type: WebhookEventType, data: WebhookEvent["data"], n = 0): WebhookEvent => ({
    id: eventId(row.id, n),
    type,
    createdAt,
    data,
  });
  switch (row.eventType) {
    case "TOKEN_DELETED": {
      if (!row.success) return [];
      if (typeof d.integration === "string") {
        const revocation = (d.revocation as { outcome?: unknown } | null | undefined)?.outcome;
        return [
          make("token.deleted", { integration: d.integration, userId: str(d.userId), revocation: str(revocation) }),
        ];
      }
      const revocations = Array.isArray(d.revocations)
        ? (d.revocations as Array<{ integration?: unknown; outcome?: unknown }>)
        : [];
      const integrations = Array.isArray(d.integrations)
        ? (d.integrations as unknown[]).filter((x): x is string => typeof x === "string")
        : [];
      return integrations.map((integration, i) =>
        make(
          "token.deleted",
          {
            integration,
            userId: str(d.userId),
            revocation: str(revocations.find((r) => r.integration === integration)?.outcome),
          },
          i,
        ),
      );
    }
    case "TOKEN_REFRESH_FAILED": {
      const from = str(d.from);
      const to = str(d.to);
      const type = to ? STATE_EVENTS[to] : undefined;
      if (!type || from === to || typeof d.integration !== "string") return [];
      return [
        make(type, {
          integration: d.integration,
          userId: str(d.userId),
          from,
          to,
          reason: str(d.reason),
          retryAt: str(d.retryAt),
        }),
      ];
    }
    case "TOKEN_REFRESHED": {
      const from = str(d.from);
      if (!from || from === "ok" || typeof d.integration !== "string") return [];
      return [make("token.recovered", { integration: d.integration, userId: str(d.userId), from, to: "ok" })];
    }
    case "KEY_ROTATED":
      return [make("key.rotated", { version: num(d.version), previous: num(d.previous) })];
    default:
      return [];
  }
}

/** A stable event id per (audit row, n): deliveries of one event share it, so receivers can dedupe. */
function eventId(auditRowId: string, n: number): string {
  if (n === 0) return auditRowId;
  const hex = new Bun.CryptoHasher("sha256").update(`${auditRowId}/${n}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * The outbox as part of the audit writer's batch statement (src/audit/batch-statement.ts): the
 * events of the batch's audit rows as one JSON parameter, and the INSERT that turns them into one
 * pending delivery per (event, enabled webhook subscribed to its type), committed with the rows.
 */
export const webhookOutbox = {
  entries(rows: readonly AuditRowForEvents[]): string | null {
    const events = rows.flatMap(eventsFromAuditRow);
    if (events.length === 0) return null;
    return JSON.stringify(events.map((e) => ({ id: e.id, type: e.type, payload: webhookPayload(e), at: e.createdAt })));
  },
  insertSql: (
    param: string,
  ) => `INSERT INTO webhook_deliveries (id, "webhookId", "eventId", "eventType", payload, status, attempts, "nextAttemptAt", "createdAt")
    SELECT gen_random_uuid(), w.id, e.id, e.type, e.payload, 'pending', 0, e.at, e.at
      FROM webhooks w
      CROSS JOIN jsonb_to_recordset(${param}::text::jsonb) AS e(id uuid, type text, payload text, at timestamptz)
     WHERE w.enabled AND e.type = ANY(w.events)`,
};

/**
 * Inserts one pending delivery per (event, enabled webhook subscribed to its type), in `tx`.
 * One statement whatever the number of events and webhooks; nothing when there are no events.
 */
export async function enqueueWebhookEvents(
  tx: Pick<Prisma.TransactionClient, "$executeRaw">,
  events: WebhookEvent[],
): Promise<void> {
  if (events.length === 0) return;
  const ids = events.map((e) => e.id);
  const types = events.map((e) => e.type);
  const payloads = events.map(webhookPayload);
  const ats = events.map((e) => e.createdAt);
  await tx.$executeRaw`
    INSERT INTO webhook_deliveries (id, "webhookId", "eventId", "eventType", payload, status, attempts, "nextAttemptAt", "createdAt")
    SELECT gen_random_uuid(), w.id, e.id, e.type, e.payload, 'pending', 0, e.at, e.at
      FROM webhooks w
      CROSS JOIN unnest(${ids}::uuid[], ${types}::text[], ${payloads}::text[], ${ats}::timestamptz[]) AS e(id, type, payload, at)
     WHERE w.enabled AND e.type = ANY(w.events)`;
}
