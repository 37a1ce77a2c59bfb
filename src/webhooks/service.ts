/**
 * Webhook endpoints (admin) and the delivery loop. Registration returns the signing secret once
 * and stores it only encrypted under a KEK-derived key. Deliveries come from the outbox
 * (`webhook_deliveries`, written with the audit rows): every process polls, claims due rows with
 * `FOR UPDATE SKIP LOCKED` plus a lease, POSTs the stored body signed with HMAC-SHA256, and
 * records the outcome; failures are retried with exponential backoff and jitter until
 * WEBHOOK_MAX_ATTEMPTS. At least once: a crash after sending and before recording re-sends.
 */
import type { AuditSink } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import type { Config } from "../config.ts";
import { openWebhookSecret, sealWebhookSecret, signatureHeader, generateWebhookSecret } from "../crypto/webhook.ts";
import type { Database } from "../db/database.ts";
import { NotFoundError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { enqueueWebhookEvents, type WebhookEvent, type WebhookEventType } from "./events.ts";
import type { Page } from "../lib/keyset-cursor.ts";
import { type DeliveryView, listDeliveries, listWebhooks, webhookView, type WebhookView } from "./views.ts";

export interface WebhookServiceDeps {
  db: Database;
  audit: AuditSink;
  clock: Clock;
  log: Logger;
  /** AES-256-GCM key derived from the KEK (crypto/webhook.ts webhookSecretKey) and the KEK's id. */
  secretKey: Uint8Array;
  kekId: string;
  config: Config["webhooks"];
  /** Random in [0, 1) for the backoff jitter (tests pin it). */
  random?: () => number;
}

const CLAIM_BATCH = 20;

export class WebhookService {
  readonly #d: WebhookServiceDeps;
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<number> | null = null;
  #closed = false;

  constructor(deps: WebhookServiceDeps) {
    this.#d = deps;
  }

  async create(
    actor: string,
    input: { url: string; events: WebhookEventType[]; description?: string },
  ): Promise<WebhookView & { secret: string }> {
    const id = Bun.randomUUIDv7();
    const secret = generateWebhookSecret();
    const sealed = sealWebhookSecret(this.#d.secretKey, id, secret);
    // The row and its WEBHOOK_CREATED audit row commit together (the audit writer's transaction).
    const row = await this.#d.audit.apply({
      change: (tx) =>
        tx.webhook.create({
          data: {
            id,
            url: input.url,
            events: [...new Set(input.events)],
            secretEncrypted: sealed,
            kekId: this.#d.kekId,
            description: input.description ?? null,
            createdBy: actor,
            createdAt: new Date(this.#d.clock.now()),
          },
        }),
      event: (row) => ({
        eventType: "WEBHOOK_CREATED",
        actor,
        target: `webhook:${id}`,
        success: true,
        details: { host: new URL(row.url).host, events: row.events },
      }),
    });
    return { ...(await webhookView(this.#d.db, row)), secret };
  }

  /** Oldest first (uuid v7 order). */
  list(q: { limit: number; cursor?: string }): Promise<Page<WebhookView>> {
    return listWebhooks(this.#d.db, q);
  }

  /** A webhook's deliveries, newest first. */
  deliveries(id: string, q: { status?: string; limit: number; cursor?: string }): Promise<Page<DeliveryView>> {
    return listDeliveries(this.#d.db, id, q);
  }

  async delete(actor: string, id: string): Promise<void> {
    await this.#d.audit.apply({
      change: async (tx) => {
        const rows = await tx.webhook.findMany({ where: { id }, select: { url: true } });
        if (rows.length === 0) throw new NotFoundError("webhook");
        await tx.webhook.deleteMany({ where: { id } });
        return rows[0]!.url;
      },
      event: (url) => ({
        eventType: "WEBHOOK_DELETED",
        actor,
        target: `webhook:${id}`,
        success: true,
        details: { host: new URL(url).host },
      }),
    });
  }

  /** Enqueues events that are not an audited change (audit.verify_failed), outside any change transaction. */
  async emit(events: WebhookEvent[]): Promise<void> {
    await enqueueWebhookEvents(this.#d.db.prisma, events);
  }

  /** A failed audit verification becomes one audit.verify_failed event (what failed where; no row contents). */
  async verified(r: {
    valid: boolean;
    checked?: number;
    firstInvalid?: { seq?: number; chainId?: string; reason?: string };
  }): Promise<void> {
    if (r.valid) return;
    await this.emit([
      {
        id: Bun.randomUUIDv7(),
        type: "audit.verify_failed",
        createdAt: new Date(this.#d.clock.now()).toISOString(),
        data: {
          checked: r.checked ?? null,
          chainId: r.firstInvalid?.chainId ?? null,
          seq: r.firstInvalid?.seq ?? null,
          reason: r.firstInvalid?.reason ?? null,
        },
      },
    ]);
  }

  /** Starts polling every WEBHOOK_POLL_MS (0: never; tests call deliverDue). */
  start(): void {
    if (this.#d.config.pollMs === 0 || this.#timer) return;
    this.#timer = setInterval(() => {
      if (!this.#running)
        void this.deliverDue().catch((err: unknown) => this.#d.log.warn("webhook delivery round failed", { err }));
    }, this.#d.config.pollMs);
    this.#timer.unref?.();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => 0);
  }

  /** One round: claims due deliveries (other processes skip them), sends them, records outcomes. Returns how many were attempted. */
  deliverDue(): Promise<number> {
    this.#running ??= this.#round().finally(() => (this.#running = null));
    return this.#running;
  }

  async #round(): Promise<number> {
    if (this.#closed) return 0;
    const { db, clock } = this.#d;
    const now = clock.now();
    const leaseUntil = new Date(now + this.#d.config.timeoutMs * 2 + 5_000);
    const claimed = await db.prisma.$queryRaw<
      Array<{ id: string; webhookId: string; eventId: string; eventType: string; payload: string; attempts: number }>
    >`
      UPDATE webhook_deliveries d SET "claimedUntil" = ${leaseUntil}
       WHERE d.id IN (
         SELECT id FROM webhook_deliveries
          WHERE status = 'pending' AND "nextAttemptAt" <= ${new Date(now)} AND ("claimedUntil" IS NULL OR "claimedUntil" <= ${new Date(now)})
          ORDER BY "nextAttemptAt", "createdAt"
          LIMIT ${CLAIM_BATCH}
          FOR UPDATE SKIP LOCKED)
      RETURNING d.id, d."webhookId", d."eventId", d."eventType", d.payload, d.attempts`;
    if (claimed.length === 0) return 0;
    const hooks = new Map(
      (await db.prisma.webhook.findMany({ where: { id: { in: [...new Set(claimed.map((c) => c.webhookId))] } } })).map(
        (w) => [w.id, w],
      ),
    );
    await Promise.all(
      claimed.map(async (d) => {
        const hook = hooks.get(d.webhookId);
        if (!hook) return; // deleted meanwhile: its deliveries went with it
        const outcome = await this.#send(hook, d);
        await this.#record(d, outcome);
      }),
    );
    return claimed.length;
  }

  async #send(
    hook: { id: string; url: string; secretEncrypted: string },
    d: { id: string; eventId: string; eventType: string; payload: string },
  ): Promise<{ ok: boolean; status: number | null; error: string | null }> {
    let secret: string;
    try {
      secret = openWebhookSecret(this.#d.secretKey, hook.id, hook.secretEncrypted);
    } catch {
      return { ok: false, status: null, error: "secret could not be decrypted (KEK changed?)" };
    }
    const timestamp = Math.floor(this.#d.clock.now() / 1000);
    try {
      const res = await fetch(hook.url, {
        method: "POST",
        redirect: "manual",
        signal: AbortSignal.timeout(this.#d.config.timeoutMs),
        headers: {
          "Content-Type": "application/json",
          "User-Agent": "chronokms-webhooks/1",
          "Chronokms-Event": d.eventType,
          "Chronokms-Event-Id": d.eventId,
          "Chronokms-Delivery": d.id,
          "Chronokms-Timestamp": String(timestamp),
          "Chronokms-Signature": signatureHeader(secret, timestamp, d.payload),
        },
        body: d.payload,
      });
      await res.body?.cancel().catch(() => {});
      return res.status >= 200 && res.status < 300
        ? { ok: true, status: res.status, error: null }
        : { ok: false, status: res.status, error: `HTTP ${res.status}` };
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
      return { ok: false, status: null, error: timedOut ? "timeout" : "connection failed" };
    }
  }

  async #record(
    d: { id: string; attempts: number },
    o: { ok: boolean; status: number | null; error: string | null },
  ): Promise<void> {
    const now = this.#d.clock.now();
    const attempts = d.attempts + 1;
    const { maxAttempts } = this.#d.config;
    const status = o.ok ? "delivered" : attempts >= maxAttempts ? "failed" : "pending";
    await this.#d.db.prisma.webhookDelivery.updateMany({
      where: { id: d.id },
      data: {
        status,
        attempts,
        lastAttemptAt: new Date(now),
        lastStatus: o.status,
        lastError: o.error,
        claimedUntil: null,
        ...(o.ok ? { deliveredAt: new Date(now) } : { nextAttemptAt: new Date(now + this.backoffMs(attempts)) }),
      },
    });
  }

  /** Delay before attempt `attempts + 1`: base·2^(attempts−1), capped, "equal jitter" (half fixed, half random). */
  backoffMs(attempts: number): number {
    const { retryBaseMs, retryMaxMs } = this.#d.config;
    const full = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.min(attempts - 1, 30));
    return Math.round(full / 2 + (this.#d.random ?? Math.random)() * (full / 2));
  }
}
