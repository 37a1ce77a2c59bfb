/** The audit contract every service writes through. Rows are durable before `record` resolves. */
import type { Prisma } from "../db/generated/client.ts";

/** The transaction a change runs in: the audit writer's group-commit transaction. */
export type AuditTx = Prisma.TransactionClient;

export const AUDIT_EVENT_TYPES = [
  "ACCESS_GRANTED",
  "ACCESS_DENIED",
  "ACCESS_SIMULATED",
  "TOKEN_STORED",
  "TOKEN_REFRESHED",
  "TOKEN_REFRESH_FAILED",
  "TOKEN_DELETED",
  "TOKEN_PROXIED",
  "TOKEN_EXPORTED",
  "TOKENS_LISTED",
  "DECRYPT_FAILED",
  "KEY_GENERATED",
  "KEY_ROTATED",
  "KEY_RETIRED",
  "KEK_REWRAPPED",
  "KEY_SCHEDULE_UPDATED",
  "KEY_REWRAP_STARTED",
  "KEY_REWRAP_FINISHED",
  "POLICY_CREATED",
  "POLICY_UPDATED",
  "POLICY_DELETED",
  "REQUESTER_CREATED",
  "REQUESTER_UPDATED",
  "REQUESTER_DELETED",
  "API_KEY_CREATED",
  "API_KEY_REVOKED",
  "AUTH_FAILED",
  "WEBHOOK_CREATED",
  "WEBHOOK_DELETED",
  "AUDIT_CHECKPOINT",
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export interface AuditEvent {
  eventType: AuditEventType;
  /** Who acted: an external requester id, or `system:<component>` for the service itself. */
  actor: string;
  /** What it acted on, e.g. `token:gmail:user-1`, `policy:<id>`, `key:v2`. */
  target?: string | null;
  /** Data time range concerned (epoch ms), for access decisions. */
  startTime?: number | null;
  endTime?: number | null;
  success: boolean;
  /** Never token values, key material, seeds or API secrets. */
  details?: Record<string, unknown>;
}

/**
 * An audit event plus rows that must be durable in the same transaction (the access_requests
 * row of a decision), so a decision is never half written.
 */
export interface AuditWrite {
  event: AuditEvent;
  accessRequest?: Prisma.AccessRequestCreateManyInput;
}

export interface AuditReceipt {
  id: string;
  chainId: string;
  seq: bigint;
}

/**
 * A state change and the audit row that records it, committed in ONE transaction: `change` runs
 * inside the audit writer's group-commit transaction (a failing change fails only its own
 * caller), and `event` builds the row from its result. `change` may be invoked more than once (a
 * batch that runs its changes without savepoints is run again with them when one fails;
 * src/audit/change-batch.ts): only the effects of its last invocation commit, so it must do
 * nothing but database work through `tx` (no side effects outside the transaction). Either both are durable
 * or neither is. Do slow work (key generation, sealing) before, not inside, `change`: batch-mates wait.
 */
export interface AuditedChange<T> {
  change: (tx: AuditTx) => Promise<T>;
  event: (result: T) => AuditEvent;
}

export interface AuditSink {
  /**
   * Appends the event (and its attached rows) and resolves once they are committed.
   * Rejects with ServiceUnavailableError when they could not be made durable: the caller must
   * then answer 503 and release no secret.
   */
  record(write: AuditWrite | AuditEvent): Promise<AuditReceipt>;
  /**
   * Runs the change and appends its row in the same transaction; resolves with the change's
   * result once both committed. The change's own error (NotFound, Conflict…) rejects only this
   * caller, with nothing written; an audit failure rejects with ServiceUnavailableError.
   */
  apply<T>(c: AuditedChange<T>): Promise<T>;
}
