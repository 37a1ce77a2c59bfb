/**
 * API keys: issue, revoke and verify. Verification is one indexed query (key joined to its
 * requester) and a constant-time hash comparison, cached briefly so the hot path stays off the
 * database; `lastUsedAt` is collected in memory and written in one UPDATE per flush.
 */
import type { Database } from "../db/database.ts";
import type { AuditSink } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import { constantTimeEqual, fromBase64url } from "../crypto/bytes.ts";
import { NotFoundError, ServiceUnavailableError, ValidationError } from "../errors.ts";
import { ROLES, type Principal, type Role } from "./principal.ts";
import { generateApiKey, hashSecret, parseApiKey } from "./api-key-format.ts";
import { listenChannel, type ChannelListener } from "../db/listen.ts";
import { ApiKeyRepository, type KeyRow } from "./api-key-repository.ts";
import { PrincipalCache } from "./principal-cache.ts";
import { watchStatements } from "../db/statement-watch.ts";

/** NOTIFY channel for API-key and requester changes: payload `key:<keyId>` or `requester:<uuid>`. */
export const ACCESS_CHANNEL = "chronokms_access";

/** Why a key was refused; kept in UnauthenticatedError.cause and the AUTH_FAILED row, never shown. */
export type AuthFailureReason =
  | "missing"
  | "malformed"
  | "unknown-key"
  | "wrong-secret"
  | "key-disabled"
  | "key-expired"
  | "requester-disabled";

export class AuthFailure extends Error {
  constructor(
    readonly reason: AuthFailureReason,
    /** The public keyId, when the presented key was well formed enough to have one. */
    readonly keyId: string | null,
  ) {
    super(`API key refused: ${reason}`);
  }
}

export interface ApiKeyServiceOptions {
  db: Database;
  audit: AuditSink;
  clock: Clock;
  log: Logger;
  /**
   * How long a successful verification is reused (default 5 s). A revocation made in this
   * process takes effect at once; one made in another process as soon as its NOTIFY arrives
   * (PostgreSQL) or its owner-socket message ran (embedded), and within this TTL at the latest
   * should the notification be lost.
   */
  cacheTtlMs?: number;
  /** How often buffered `lastUsedAt` values are written (default 5 s). */
  lastUsedFlushMs?: number;
}

export interface ApiKeyView {
  keyId: string;
  name: string | null;
  roles: Role[];
  enabled: boolean;
  expiresAt: string | null;
  lastUsedAt: string | null;
  createdAt: string;
}

// Compared against when the keyId is unknown, so that path costs the same as a wrong secret.
const DUMMY_HASH = fromBase64url(hashSecret("aaaaaaaaaaaaaaaa", new Uint8Array(32)));

export function toRoles(values: readonly string[] | null | undefined): Role[] {
  return (values ?? []).filter((r): r is Role => (ROLES as readonly string[]).includes(r));
}

export class ApiKeyService {
  /** Invalidated here or as announced by another process (see PrincipalCache's generation). */
  private readonly cache = new PrincipalCache();
  private readonly repo: ApiKeyRepository;
  private readonly lastUsed = new Map<string, number>();
  private readonly cacheTtlMs: number;
  private readonly flushTimer: ReturnType<typeof setInterval>;
  private flushing: Promise<void> | undefined;
  private listener: ChannelListener | undefined;
  private unwatch: (() => void) | undefined;
  private readonly pendingNotifies = new Set<Promise<unknown>>();

  constructor(private readonly o: ApiKeyServiceOptions) {
    this.cacheTtlMs = o.cacheTtlMs ?? 5_000;
    this.repo = new ApiKeyRepository(o.db);
    this.flushTimer = setInterval(() => void this.flushLastUsed(), o.lastUsedFlushMs ?? 5_000);
    this.flushTimer.unref?.();
  }

  /**
   * Hears other processes' API-key and requester changes: PostgreSQL LISTEN; on the embedded
   * database's owner, any message of an owner-socket client (Studio, a script), whose SQL is not
   * looked into, drops every cached principal (PGlite has no NOTIFY between processes).
   */
  start(): void {
    const pglite = this.o.db.pool ? undefined : this.o.db.pglite;
    if (pglite && !this.unwatch)
      this.unwatch = watchStatements(pglite, (sql) => {
        if (sql === null) this.cache.dropAll();
      });
    this.listener ??= listenChannel(
      this.o.db,
      ACCESS_CHANNEL,
      {
        onNotify: (payload) => {
          if (payload.startsWith("key:")) this.cache.dropKey(payload.slice(4));
          else if (payload.startsWith("requester:")) this.cache.dropRequester(payload.slice(10));
          else this.cache.dropAll();
        },
        // Changes made while nobody listened were not heard: forget everything once.
        onListening: () => this.cache.dropAll(),
      },
      this.o.log,
    );
  }

  /** The cached principal for exactly this key string, or null (no database work). */
  cached(presented: string): Principal | null {
    const parsed = parseApiKey(presented);
    if (!parsed) return null;
    const hit = this.cache.get(parsed.keyId, hashSecret(parsed.keyId, parsed.secret), this.o.clock.now());
    parsed.secret.fill(0);
    return hit;
  }

  /** Resolves to the principal, or rejects with AuthFailure (or ServiceUnavailableError). */
  async verify(presented: string | undefined): Promise<Principal> {
    if (presented === undefined || presented === "") throw new AuthFailure("missing", null);
    const parsed = parseApiKey(presented);
    if (!parsed) throw new AuthFailure("malformed", null);
    const { keyId } = parsed;
    const hash = hashSecret(keyId, parsed.secret);
    parsed.secret.fill(0);
    const now = this.o.clock.now();
    const hit = this.cache.get(keyId, hash, now);
    if (hit) {
      this.lastUsed.set(keyId, now);
      return hit;
    }

    const generation = this.cache.generation();
    let row: KeyRow | null;
    try {
      row = await this.repo.forVerification(keyId);
    } catch (err) {
      throw new ServiceUnavailableError("could not verify the API key: database unavailable", err);
    }
    const presentedHash = fromBase64url(hash);
    const storedHash = row ? safeDecode(row.secretHash) : null;
    const matches = constantTimeEqual(presentedHash, storedHash ?? DUMMY_HASH) && storedHash !== null;
    if (!row) throw new AuthFailure("unknown-key", keyId);
    if (!matches) throw new AuthFailure("wrong-secret", keyId);
    if (!row.enabled) throw new AuthFailure("key-disabled", keyId);
    const keyExpiresAt = row.expiresAt ? row.expiresAt.getTime() : null;
    if (keyExpiresAt !== null && keyExpiresAt <= now) throw new AuthFailure("key-expired", keyId);
    if (!row.requesterEnabled) throw new AuthFailure("requester-disabled", keyId);

    const principal: Principal = Object.freeze({
      id: row.rid,
      requesterId: row.requesterId,
      department: row.department,
      keyId,
      roles: Object.freeze(toRoles(row.roles)),
      publicKeyJwk: (row.publicKeyJwk as JsonWebKey | null) ?? null,
    });
    // A revocation (or requester change) landed while the row was being read: answer this
    // request from what was read, but do not cache it.
    this.cache.remember(generation, hash, {
      principal,
      requesterUuid: row.rid,
      keyExpiresAt,
      cachedUntil: now + this.cacheTtlMs,
    });
    this.lastUsed.set(keyId, now);
    return principal;
  }

  /** Issues a key for a requester (internal id); the returned `apiKey` is never retrievable again. */
  async create(
    requesterUuid: string,
    input: { roles: Role[]; name?: string | null; expiresAt?: number | null },
    actor: string,
  ): Promise<{ keyId: string; apiKey: string; key: ApiKeyView }> {
    if (input.expiresAt != null && input.expiresAt <= this.o.clock.now())
      throw new ValidationError("invalid body: expiresAt: must be in the future");
    const requester = await this.repo.requester(requesterUuid);
    if (!requester) throw new NotFoundError("requester");
    const { keyId, apiKey, secretHash } = generateApiKey();
    // The key and its API_KEY_CREATED audit row commit together: an unaudited key never exists.
    const row = await this.o.audit.apply({
      change: (tx) =>
        this.repo.insert(tx, {
          keyId,
          secretHash,
          requesterId: requesterUuid,
          name: input.name ?? null,
          roles: [...new Set(input.roles)],
          expiresAt: input.expiresAt == null ? null : new Date(input.expiresAt),
        }),
      event: (row) => ({
        eventType: "API_KEY_CREATED",
        actor,
        target: `api-key:${keyId}`,
        success: true,
        details: {
          requesterId: requester.requesterId,
          roles: row.roles,
          expiresAt: row.expiresAt?.toISOString() ?? null,
        },
      }),
    });
    return { keyId, apiKey, key: viewOf(row) };
  }

  /** Disables a key of this requester (the row stays, for history). Idempotent. */
  async revoke(requesterUuid: string, keyId: string, actor: string): Promise<void> {
    const key = await this.repo.withRequester(keyId);
    if (!key || key.requesterId !== requesterUuid) throw new NotFoundError("API key");
    await this.o.audit.apply({
      change: async (tx) => {
        if (!(await this.repo.disable(tx, requesterUuid, keyId))) throw new NotFoundError("API key");
      },
      event: () => ({
        eventType: "API_KEY_REVOKED",
        actor,
        target: `api-key:${keyId}`,
        success: true,
        details: { requesterId: key.requester.requesterId },
      }),
    });
    this.invalidateKey(keyId);
  }

  async listFor(requesterUuid: string): Promise<ApiKeyView[]> {
    return (await this.repo.listFor(requesterUuid)).map(viewOf);
  }

  /** A key changed (revoked): drop it here at once and tell every other process. */
  invalidateKey(keyId: string): void {
    this.cache.dropKey(keyId);
    this.announce(`key:${keyId}`);
  }

  /** A requester changed (disabled, edited, deleted): drop its keys here and everywhere. */
  invalidateRequester(requesterUuid: string): void {
    this.cache.dropRequester(requesterUuid);
    this.announce(`requester:${requesterUuid}`);
  }

  /** NOTIFY on PostgreSQL; a lost notification is bounded by the cache TTL. */
  private announce(payload: string): void {
    if (this.o.db.kind !== "postgres") return;
    const p = this.o.db.prisma.$executeRaw`SELECT pg_notify(${ACCESS_CHANNEL}, ${payload})`
      .catch((err) =>
        this.o.log.warn("API key change notification failed; other processes drop it within the cache TTL", { err }),
      )
      .finally(() => this.pendingNotifies.delete(p));
    this.pendingNotifies.add(p);
  }

  /** Writes buffered `lastUsedAt` values in one statement; never lowers a stored value. */
  flushLastUsed(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.lastUsed.size === 0) return Promise.resolve();
    const batch = [...this.lastUsed];
    this.lastUsed.clear();
    const keyIds = batch.map(([k]) => k);
    const times = batch.map(([, t]) => new Date(t).toISOString());
    this.flushing = this.repo
      .touchLastUsed(keyIds, times)
      .catch((err) => {
        // Best effort: put the values back for the next flush unless newer ones arrived.
        for (const [k, t] of batch) if (!this.lastUsed.has(k)) this.lastUsed.set(k, t);
        this.o.log.warn("could not record API key lastUsedAt", { err });
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    this.unwatch?.();
    await Promise.all([...this.pendingNotifies]);
    await this.listener?.close();
    await this.flushing;
    await this.flushLastUsed();
  }
}

function safeDecode(b64: string): Uint8Array | null {
  try {
    return fromBase64url(b64);
  } catch {
    return null;
  }
}

export function viewOf(row: {
  keyId: string;
  name: string | null;
  roles: string[];
  enabled: boolean;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  createdAt: Date;
}): ApiKeyView {
  return {
    keyId: row.keyId,
    name: row.name,
    roles: toRoles(row.roles),
    enabled: row.enabled,
    expiresAt: row.expiresAt?.toISOString() ?? null,
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
  };
}
