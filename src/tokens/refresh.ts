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
import { claimForcedRefresh, releaseForcedRefresh } from "./forced.ts";
import { createRefreshLock, LockTimeoutError, SingleFlight, type RefreshLock } from "./lock.ts";
import {
  failureReason,
  providerFor,
  requestRefresh,
  type Provider,
  type RefreshFailureReason,
  type RefreshResult,
} from "./providers.ts";
import { openField, sealTokens, tokenTarget, type TokenRow } from "./record.ts";
import { tokenRepository } from "./repository.ts";

/** A token is refreshed on read when it expires within this window. */
export const REFRESH_WINDOW_MS = 5 * 60_000;
const CAS_ATTEMPTS = 5;

export type RefreshOutcome =
  /** `row` holds a newer token than the caller saw (refreshed by us or by a peer, or re-stored). */
  | { status: "refreshed"; row: TokenRow; plain?: { accessToken: string; refreshToken: string | null } }
  /**
   * No refresh happened; `row` is the latest state (its refreshStatus records why). `reason`
   * "backoff": no upstream attempt was made, the token is inside its backoff window until `retryAt`.
   */
  | { status: "failed"; permanent: boolean; reason: string; row: TokenRow; retryAt?: number };

/** Refresh states (README "Token lifecycle"). v1 rows may still say `refresh-failed` (= degraded). */
export type RefreshState = "ok" | "degraded" | "needs-reauth";
export const refreshState = (s: string): RefreshState =>
  s === "needs-reauth" ? "needs-reauth" : s === "ok" ? "ok" : "degraded";

/** Backoff after the n-th transient failure in a row: base·2^(n−1), capped, half of it random (equal jitter). */
export function refreshBackoffMs(
  failures: number,
  opts: { baseMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const full = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
  return Math.round(full / 2 + random() * (full / 2));
}

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
  /** Backoff after transient failures (default 30 s doubling to 1 h) and its jitter source. */
  backoff?: { baseMs: number; maxMs: number; random?: () => number };
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

  /** Inside the backoff window after a transient failure: no upstream attempt until it ends. */
  inBackoff(row: Pick<TokenRow, "nextRefreshAt">, now: number): boolean {
    return row.nextRefreshAt !== null && row.nextRefreshAt.getTime() > now;
  }

  /**
   * Refreshes `seen` (the row as the caller read it) unless someone already did. Concurrent
   * callers in this process share one run, whose audit rows name the first caller as actor.
   * With `force`, the refresh happens even when not due, if this caller wins the forced-refresh
   * claim (src/tokens/forced.ts); forced and unforced callers never share a run (a forced caller
   * joining an unforced run would get no refresh), they queue on the same lock instead.
   * Inside a backoff window nothing is attempted (checked before the lock and again under it,
   * after the re-read, so all processes together make at most one attempt per window).
   */
  refresh(seen: TokenRow, actor: string, opts: { force?: boolean } = {}): Promise<RefreshOutcome> {
    if (this.inBackoff(seen, this.#deps.clock.now())) return Promise.resolve(backedOff(seen));
    const name = `oauth-refresh:${seen.integration}:${seen.userId}`;
    return this.#flights.run(opts.force ? `${name}:force` : name, async () => {
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
    const locked = await tokenRepository(db).byId(seen.id);
    if (!locked) throw new NotFoundError("token");
    const row: TokenRow = locked;
    if (newerThan(row, seen)) return { status: "refreshed", row };
    if (this.inBackoff(row, clock.now())) return backedOff(row);
    if (this.wants(row, clock.now())) return this.#refreshRow(row, actor);
    // Not due: only a forced caller that wins the claim (taken here, under the lock, after the
    // re-read) refreshes. A lost claim means a forced refresh within the interval: the row is fresh.
    if (!force || !this.canRefresh(row)) {
      return {
        status: "failed",
        permanent: row.refreshStatus === "needs-reauth",
        reason: row.refreshStatus === "needs-reauth" ? "needs-reauth" : "not-refreshable",
        row,
      };
    }
    if (!(await claimForcedRefresh(db, row)))
      return { status: "failed", permanent: false, reason: "forced-refresh-limited", row };
    let outcome: RefreshOutcome | undefined;
    try {
      outcome = await this.#refreshRow(row, actor);
      return outcome;
    } finally {
      // A refresh that did not happen gives the claim back, so the next forced read tries again.
      if (outcome?.status !== "refreshed") await releaseForcedRefresh(db, row);
    }
  }

  async #refreshRow(row: TokenRow, actor: string): Promise<RefreshOutcome> {
    const { db, clock } = this.#deps;
    const provider = this.provider(row.integration)!;
    const refreshToken = await openField(this.#deps, row, "refresh", actor);
    const result = await requestRefresh(provider, refreshToken, { timeoutMs: this.#deps.timeoutMs });
    if (!result.ok) return this.#recordFailure(row, provider, result, actor);

    const done = clock.now();
    const plain = { accessToken: result.tokens.accessToken, refreshToken: result.tokens.refreshToken ?? refreshToken };
    const expiresAt =
      result.tokens.expiresInSeconds === undefined ? null : new Date(done + result.tokens.expiresInSeconds * 1000);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      // Sealed for the row version this write creates (so re-sealed after a CAS miss).
      // Deliberately not in the audit transaction: the provider has already rotated the refresh
      // token, so the new one is stored even if its TOKEN_REFRESHED row then fails (the caller gets
      // 503); rolling the token back with the audit row would lose the only valid refresh token.
      const sealed = await sealTokens(this.#deps.keys, row, plain, Number(row.version) + 1);
      const written = await tokenRepository(db).writeRefreshed(row, {
        ...sealed,
        expiresAt,
        scope: result.tokens.scope ?? row.scope,
        tokenType: result.tokens.tokenType ?? row.tokenType,
        issuedAt: new Date(done),
      });
      if (written) {
        await this.#deps.audit.record({
          eventType: "TOKEN_REFRESHED",
          actor,
          target: tokenTarget(row.integration, row.userId),
          success: true,
          details: {
            provider: provider.name,
            integration: row.integration,
            userId: row.userId,
            from: refreshState(row.refreshStatus),
            to: "ok",
            keyVersion: sealed.keyVersion,
            expiresAt: expiresAt?.toISOString() ?? null,
            refreshRotated: result.tokens.refreshToken !== undefined,
          },
        });
        return { status: "refreshed", row: written, plain };
      }
      // CAS miss. A key rotation re-sealing the row changes only ciphertexts and versions: write
      // ours over it. A store (or delete) replaced the token itself: that newer token wins.
      const current = await tokenRepository(db).byId(row.id);
      if (!current) throw new NotFoundError("token");
      if (contentChanged(current, row) || (await this.#otherGrant(current, refreshToken, actor))) {
        this.#deps.log.info("token re-stored during refresh; keeping the stored one", {
          target: tokenTarget(row.integration, row.userId),
        });
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

  /**
   * One state transition per failure: transient → `degraded` with the next attempt after a
   * backoff (failures in a row doubling it), permanent → `needs-reauth`. Audited with the typed
   * reason (and the provider's own code); a degraded → degraded failure is audited too.
   */
  async #recordFailure(
    row: TokenRow,
    provider: Provider,
    result: Extract<RefreshResult, { ok: false }>,
    actor: string,
  ): Promise<RefreshOutcome> {
    const now = this.#deps.clock.now();
    const reason = failureReason(result);
    const to: RefreshState = result.permanent ? "needs-reauth" : "degraded";
    const failures = result.permanent ? row.refreshFailures : row.refreshFailures + 1;
    const b = this.#deps.backoff ?? { baseMs: 30_000, maxMs: 3_600_000 };
    const nextRefreshAt = result.permanent ? null : new Date(now + refreshBackoffMs(failures, b, b.random));
    const transition = { from: refreshState(row.refreshStatus), to };
    // The state and its TOKEN_REFRESH_FAILED row commit together. A CAS miss means the row was
    // re-stored or re-sealed meanwhile (a store resets the state anyway); the attempt is audited.
    // No version bump: the ciphertexts name the row version, and this write changes none of them.
    const repo = tokenRepository(this.#deps.db);
    let latest = await this.#deps.audit.apply({
      change: (tx) =>
        repo.writeRefreshFailure(tx, row, {
          refreshStatus: to,
          refreshFailures: failures,
          nextRefreshAt,
          refreshReason: reason,
        }),
      event: () =>
        refreshFailedEvent(row, actor, {
          provider: provider.name,
          ...transition,
          reason,
          providerError: result.reason,
          permanent: result.permanent,
          failures,
          retryAt: nextRefreshAt?.toISOString() ?? null,
          ...(result.status ? { status: result.status } : {}),
        }),
    });
    this.#deps.log.warn("token refresh failed", {
      target: tokenTarget(row.integration, row.userId),
      provider: provider.name,
      reason,
      ...transition,
    });
    if (!latest) {
      // Re-stored meanwhile: the caller should get that newer token, not the one we failed on.
      const current = await repo.byId(row.id);
      if (!current) throw new NotFoundError("token");
      if (contentChanged(current, row)) return { status: "refreshed", row: current };
      latest = current;
    }
    return {
      status: "failed",
      permanent: result.permanent,
      reason,
      row: latest,
      ...(nextRefreshAt ? { retryAt: nextRefreshAt.getTime() } : {}),
    };
  }

  /**
   * An expired token without a refresh token can never be refreshed: one transition to
   * `needs-reauth` (reason no_refresh_token), audited once; later reads find it there.
   */
  async markNeedsReauth(row: TokenRow, actor: string, reason: RefreshFailureReason): Promise<void> {
    if (row.refreshStatus === "needs-reauth") return;
    const repo = tokenRepository(this.#deps.db);
    try {
      await this.#deps.audit.apply({
        change: async (tx) => {
          if (!(await repo.markNeedsReauth(tx, row, reason))) throw new NoTransition();
        },
        event: () =>
          refreshFailedEvent(row, actor, {
            from: refreshState(row.refreshStatus),
            to: "needs-reauth",
            reason,
            permanent: true,
          }),
      });
    } catch (err) {
      if (!(err instanceof NoTransition)) throw err; // another reader made the transition first
    }
  }
}

/** A TOKEN_REFRESH_FAILED row for this record: the transition and why. */
function refreshFailedEvent(row: TokenRow, actor: string, details: Record<string, unknown>) {
  return {
    eventType: "TOKEN_REFRESH_FAILED" as const,
    actor,
    target: tokenTarget(row.integration, row.userId),
    success: false,
    details: { integration: row.integration, userId: row.userId, ...details },
  };
}

/** The row changed (or already moved) meanwhile: nothing to record. */
class NoTransition extends Error {}

function backedOff(row: TokenRow): RefreshOutcome {
  return { status: "failed", permanent: false, reason: "backoff", row, retryAt: row.nextRefreshAt!.getTime() };
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
  return (
    row.issuedAt.getTime() > seen.issuedAt.getTime() || (row.version !== seen.version && contentChanged(row, seen))
  );
}
