/**
 * Refreshing a stored token: exactly one upstream call per token however many reads (and
 * processes) want it at once. Single-flight + advisory lock, re-read under the lock, then a
 * compare-and-set write-back that never clobbers a token stored meanwhile.
 */
import type { AuditSink } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import type { Config } from "../config.ts";
import type { Database } from "../db/database.ts";
import { NotFoundError } from "../errors.ts";
import type { KeyService } from "../keys/types.ts";
import type { Logger } from "../log.ts";
import { createRefreshLock, LockTimeoutError, SingleFlight, type RefreshLock } from "./lock.ts";
import { providerFor, requestRefresh, type Provider, type RefreshResult } from "./providers.ts";
import { openField, sealTokens, tokenTarget, type TokenRow } from "./record.ts";

/** A token is refreshed on read when it expires within this window. */
export const REFRESH_WINDOW_MS = 5 * 60_000;
const CAS_ATTEMPTS = 5;

export type RefreshOutcome =
  /** `row` holds a newer token than the caller saw (refreshed by us or by a peer, or re-stored). */
  | { status: "refreshed"; row: TokenRow; plain?: { accessToken: string; refreshToken: string | null } }
  /** No refresh happened; `row` is the latest state (its refreshStatus records why). */
  | { status: "failed"; permanent: boolean; reason: string; row: TokenRow };

export interface TokenRefresherDeps {
  db: Database;
  keys: KeyService;
  audit: AuditSink;
  clock: Clock;
  log: Logger;
  providers: Config["providers"];
  timeoutMs: number;
  /** How long a refresh waits for a peer's refresh of the same token (default timeoutMs + 5 s). */
  lockWaitMs?: number;
  lock?: RefreshLock;
}

export class TokenRefresher {
  readonly #deps: TokenRefresherDeps;
  readonly #lock: RefreshLock;
  readonly #flights = new SingleFlight<RefreshOutcome>();

  constructor(deps: TokenRefresherDeps) {
    this.#deps = deps;
    this.#lock = deps.lock ?? createRefreshLock(deps.db);
  }

  provider(integration: string): Provider | null {
    return providerFor(integration, this.#deps.providers);
  }

  /** A refresh is possible at all: a refresh token the provider has not refused, and a provider. */
  canRefresh(row: Pick<TokenRow, "integration" | "refreshToken" | "refreshStatus">): boolean {
    return row.refreshToken !== null && row.refreshStatus !== "needs-reauth" && this.provider(row.integration) !== null;
  }

  /** Whether a read at `now` should refresh this row first: possible, and expiring within the window. */
  wants(row: Pick<TokenRow, "integration" | "expiresAt" | "refreshToken" | "refreshStatus">, now: number): boolean {
    return row.expiresAt !== null && row.expiresAt.getTime() - now <= REFRESH_WINDOW_MS && this.canRefresh(row);
  }

  /**
   * Refreshes `seen` (the row as the caller read it) unless someone already did. Concurrent
   * callers in this process share one run, whose audit rows name the first caller as actor.
   */
  refresh(seen: TokenRow, actor: string, opts: { force?: boolean } = {}): Promise<RefreshOutcome> {
    const name = `oauth-refresh:${seen.integration}:${seen.userId}`;
    return this.#flights.run(name, async () => {
      const waitMs = this.#deps.lockWaitMs ?? this.#deps.timeoutMs + 5_000;
      try {
        return await this.#lock.withLock(name, waitMs, () => this.#refreshLocked(seen, actor, opts.force ?? false));
      } catch (err) {
        if (!(err instanceof LockTimeoutError)) throw err;
        return { status: "failed", permanent: false, reason: "lock-timeout", row: seen };
      }
    });
  }

  async #refreshLocked(seen: TokenRow, actor: string, force: boolean): Promise<RefreshOutcome> {
    const { db, clock } = this.#deps;
    // Another process may have refreshed (or someone re-stored) while we waited for the lock.
    const locked = await db.prisma.oAuthToken.findUnique({ where: { id: seen.id } });
    if (!locked) throw new NotFoundError("token");
    let row: TokenRow = locked;
    if (newerThan(row, seen)) return { status: "refreshed", row };
    if (!(force ? this.canRefresh(row) : this.wants(row, clock.now()))) {
      return { status: "failed", permanent: row.refreshStatus === "needs-reauth", reason: row.refreshStatus === "needs-reauth" ? "needs-reauth" : "not-refreshable", row };
    }
    const provider = this.provider(row.integration)!;
    const refreshToken = await openField(this.#deps, row, "refresh", actor);
    const result = await requestRefresh(provider, refreshToken, { timeoutMs: this.#deps.timeoutMs });
    if (!result.ok) return this.#recordFailure(row, provider, result, actor);

    const done = clock.now();
    const plain = { accessToken: result.tokens.accessToken, refreshToken: result.tokens.refreshToken ?? refreshToken };
    const expiresAt = result.tokens.expiresInSeconds === undefined ? null : new Date(done + result.tokens.expiresInSeconds * 1000);
    const sealed = await sealTokens(this.#deps.keys, row, plain, done);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const written = await db.prisma.oAuthToken.updateManyAndReturn({
        where: { id: row.id, version: row.version },
        data: {
          ...sealed,
          expiresAt,
          scope: result.tokens.scope ?? row.scope,
          tokenType: result.tokens.tokenType ?? row.tokenType,
          issuedAt: new Date(done),
          refreshStatus: "ok",
          version: { increment: 1 },
        },
      });
      if (written[0]) {
        await this.#deps.audit.record({
          eventType: "TOKEN_REFRESHED",
          actor,
          target: tokenTarget(row.integration, row.userId),
          success: true,
          details: {
            provider: provider.name,
            integration: row.integration,
            userId: row.userId,
            from: row.refreshStatus,
            keyVersion: sealed.keyVersion,
            expiresAt: expiresAt?.toISOString() ?? null,
            refreshRotated: result.tokens.refreshToken !== undefined,
          },
        });
        return { status: "refreshed", row: written[0], plain };
      }
      // CAS miss. A key rotation re-sealing the row changes only ciphertexts and versions: write
      // ours over it. A store (or delete) replaced the token itself: that newer token wins.
      const current: TokenRow | null = await db.prisma.oAuthToken.findUnique({ where: { id: row.id } });
      if (!current) throw new NotFoundError("token");
      if (contentChanged(current, row) || (await this.#otherGrant(current, refreshToken, actor))) {
        this.#deps.log.info("token re-stored during refresh; keeping the stored one", { target: tokenTarget(row.integration, row.userId) });
        return { status: "refreshed", row: current };
      }
      row = current;
    }
    throw new Error("token row kept changing during refresh write-back");
  }

  /** Same metadata, but a different refresh token: a store within the same millisecond. */
  async #otherGrant(current: TokenRow, usedRefreshToken: string, actor: string): Promise<boolean> {
    if (current.refreshToken === null) return true;
    return (await openField(this.#deps, current, "refresh", actor)) !== usedRefreshToken;
  }

  async #recordFailure(row: TokenRow, provider: Provider, result: Extract<RefreshResult, { ok: false }>, actor: string): Promise<RefreshOutcome> {
    const refreshStatus = result.permanent ? "needs-reauth" : "refresh-failed";
    // A miss means the row was re-stored or re-sealed meanwhile; a store resets the status anyway.
    const written = await this.#deps.db.prisma.oAuthToken.updateManyAndReturn({
      where: { id: row.id, version: row.version },
      data: { refreshStatus, version: { increment: 1 } },
    });
    await this.#deps.audit.record({
      eventType: "TOKEN_REFRESH_FAILED",
      actor,
      target: tokenTarget(row.integration, row.userId),
      success: false,
      details: { provider: provider.name, integration: row.integration, userId: row.userId, from: row.refreshStatus, to: refreshStatus, reason: result.reason, permanent: result.permanent, ...(result.status ? { status: result.status } : {}) },
    });
    this.#deps.log.warn("token refresh failed", { target: tokenTarget(row.integration, row.userId), provider: provider.name, reason: result.reason, permanent: result.permanent });
    let latest = written[0];
    if (!latest) {
      // Re-stored meanwhile: the caller should get that newer token, not the one we failed on.
      const current = await this.#deps.db.prisma.oAuthToken.findUnique({ where: { id: row.id } });
      if (!current) throw new NotFoundError("token");
      if (contentChanged(current, row)) return { status: "refreshed", row: current };
      latest = current;
    }
    return { status: "failed", permanent: result.permanent, reason: result.reason, row: latest };
  }
}

/** The token itself (not just its ciphertext or bookkeeping) differs from what we refreshed. */
function contentChanged(current: TokenRow, before: TokenRow): boolean {
  return (
    current.issuedAt.getTime() !== before.issuedAt.getTime() ||
    current.expiresAt?.getTime() !== before.expiresAt?.getTime() ||
    (current.refreshToken === null) !== (before.refreshToken === null)
  );
}

/** The row now holds a token issued after the one the caller saw. */
function newerThan(row: TokenRow, seen: TokenRow): boolean {
  return row.issuedAt.getTime() > seen.issuedAt.getTime() || (row.version !== seen.version && contentChanged(row, seen));
}
