/**
 * The token vault: store, read (after the access decision; refreshed when due), status, delete,
 * list. Token values exist in the clear only in memory, between the caller and the KeyService.
 */
import type { PolicyAccessDecider } from "../access/decider.ts";
import type { Principal } from "../access/principal.ts";
import type { AuditSink } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import type { Database } from "../db/database.ts";
import {
  ChronoError,
  ConflictError,
  KeyUnavailableError,
  NotFoundError,
  ReauthRequiredError,
  RefreshBackoffError,
  UpstreamError,
} from "../errors.ts";
import type { KeyService } from "../keys/types.ts";
import type { Logger } from "../log.ts";
import { LastUsedTracker } from "./last-used.ts";
import { openField, sealTokens, tokenTarget, type TokenRow } from "./record.ts";
import { refreshState, type RefreshState, type TokenRefresher } from "./refresh.ts";
import type { Revocation, RevokeMode, TokenRevoker } from "./revoke.ts";
import type { ListTokensQuery, StoreTokenBody } from "./schemas.ts";

export interface TokenKey {
  integration: string;
  userId: string;
}

export type TokenStatus = "valid" | "expired" | "needs-reauth";

export interface TokenMetadata extends TokenKey {
  expiresAt: string | null;
  scope: string | null;
  tokenType: string | null;
  hasRefreshToken: boolean;
  refreshStatus: RefreshState;
  /** Typed reason of the last refresh failure (null when ok). */
  refreshReason: string | null;
  /** While degraded: no refresh attempt before this instant. */
  nextRefreshAt: string | null;
  status: TokenStatus;
  keyVersion: number;
  issuedAt: string;
  lastUsed: string | null;
  createdAt: string;
  updatedAt: string;
  ipAddress: string | null;
  userAgent: string | null;
}

/** A read never carries the refresh token (SPEC v2 §8): it stays inside the service. */
export interface TokenReadResult extends TokenKey {
  accessToken: string;
  expiresAt?: string;
  scope?: string;
  tokenType?: string;
  issuedAt: string;
  lastUsed: string;
  refreshed: boolean;
  hasRefreshToken: boolean;
}

/** What the export endpoint (role exporter) returns: the stored record, refresh token included. */
export interface TokenExportResult extends TokenKey {
  accessToken: string;
  refreshToken?: string;
  expiresAt?: string;
  scope?: string;
  tokenType?: string;
  issuedAt: string;
}

/** A token read refused by policy: 403 naming the access request, deciding policy and reason. */
export class TokenAccessDeniedError extends ChronoError {
  constructor(reason: string, details: { accessRequestId: string; policyId: string | null; denialCode: string }) {
    super("ACCESS_DENIED", `access denied: ${reason}`, { details: { ...details, reason } });
  }
}

export interface TokenVaultDeps {
  db: Database;
  keys: KeyService;
  audit: AuditSink;
  decider: Pick<PolicyAccessDecider, "decide" | "evaluate">;
  refresher: TokenRefresher;
  /** Revocation at the provider on delete; without it deletes only remove the record. */
  revoker?: TokenRevoker;
  clock: Clock;
  log: Logger;
  /** How often coalesced lastUsed times are written (default 5 s). */
  lastUsedFlushMs?: number;
}

/** Forced refreshes of one token: at most one upstream call per this interval, across processes. */
export { FORCED_REFRESH_INTERVAL_MS } from "./forced.ts";
const STORE_ATTEMPTS = 5;
/** Rows read per statement while a list scans for admitted rows. */
const LIST_SCAN_CHUNK = 200;

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

export class TokenVault {
  readonly #d: TokenVaultDeps;
  readonly lastUsed: LastUsedTracker;

  constructor(deps: TokenVaultDeps) {
    this.#d = deps;
    this.lastUsed = new LastUsedTracker(deps.db, deps.log, { flushMs: deps.lastUsedFlushMs });
  }

  /** PUT semantics: creates or wholly replaces the record (refresh status reset, version bumped). */
  async store(
    principal: Principal,
    key: TokenKey,
    body: StoreTokenBody,
    meta: { ipAddress: string | null; userAgent: string | null },
  ): Promise<{ created: boolean; token: TokenMetadata }> {
    const now = this.#d.clock.now();
    const at = new Date(now);
    const expiresAt = body.expiresAt === undefined ? null : new Date(body.expiresAt);
    const plain = { accessToken: body.accessToken, refreshToken: body.refreshToken ?? null };
    // The ciphertexts name the row version this write creates, so it is read first and the write
    // is a compare-and-set on it: a concurrent write in between makes us seal again. The row and
    // its TOKEN_STORED audit row commit together (one transaction of the audit writer).
    let row: (TokenRow & { inserted: boolean }) | undefined;
    let sealed: Awaited<ReturnType<typeof sealTokens>> | undefined;
    for (let attempt = 0; attempt < STORE_ATTEMPTS && !row; attempt++) {
      const cur = await this.#d.db.prisma.oAuthToken.findUnique({
        where: { userId_integration: { userId: key.userId, integration: key.integration } },
        select: { version: true },
      });
      const prev = cur ? Number(cur.version) : 0;
      const s = (sealed = await sealTokens(this.#d.keys, key, plain, prev + 1));
      try {
        row = await this.#d.audit.apply({
          change: async (tx) => {
            // One statement; `xmax = 0` is true only for a freshly inserted tuple. No row back: someone
            // wrote (or created, when prev = 0) the record since we read its version.
            const rows = await tx.$queryRaw<Array<TokenRow & { inserted: boolean }>>`
        INSERT INTO oauth_tokens (id, "userId", integration, "accessToken", "refreshToken", "expiresAt", scope, "tokenType",
          "createdAt", "updatedAt", "issuedAt", "ipAddress", "userAgent", "keyVersion", "refreshStatus", version)
        VALUES (${Bun.randomUUIDv7()}::uuid, ${key.userId}, ${key.integration}, ${s.accessToken}, ${s.refreshToken},
          ${expiresAt}, ${body.scope ?? null}, ${body.tokenType ?? null}, ${at}, ${at}, ${at},
          ${meta.ipAddress}, ${meta.userAgent}, ${s.keyVersion}, 'ok', ${prev + 1})
        ON CONFLICT ("userId", integration) DO UPDATE SET
          "accessToken" = EXCLUDED."accessToken", "refreshToken" = EXCLUDED."refreshToken", "expiresAt" = EXCLUDED."expiresAt",
          scope = EXCLUDED.scope, "tokenType" = EXCLUDED."tokenType", "updatedAt" = EXCLUDED."updatedAt",
          "issuedAt" = EXCLUDED."issuedAt", "ipAddress" = EXCLUDED."ipAddress", "userAgent" = EXCLUDED."userAgent",
          "keyVersion" = EXCLUDED."keyVersion", "refreshStatus" = 'ok', "refreshFailures" = 0, "nextRefreshAt" = NULL, "refreshReason" = NULL, "forcedRefreshAt" = NULL, "integrationCtx" = NULL, version = oauth_tokens.version + 1
        WHERE oauth_tokens.version = ${prev}
        RETURNING *, (xmax = 0) AS inserted`;
            if (!rows[0]) throw new StoreRaced();
            return rows[0];
          },
          event: (row) => ({
            eventType: "TOKEN_STORED",
            actor: principal.requesterId,
            target: tokenTarget(key.integration, key.userId),
            success: true,
            // issuedAt names this very write (the row keeps it until the next PUT), pairing row and audit row.
            details: {
              created: row.inserted,
              withRefresh: s.refreshToken !== null,
              expiresAt: iso(expiresAt),
              issuedAt: at.toISOString(),
              keyVersion: s.keyVersion,
              ipAddress: meta.ipAddress,
            },
          }),
        });
      } catch (err) {
        if (!(err instanceof StoreRaced)) throw err;
      }
    }
    if (!row || !sealed) throw new ConflictError("the token record kept changing while it was being stored; retry");
    return { created: row.inserted, token: this.#metadata(row, now) };
  }

  /**
   * The access decision comes first, so a denied caller cannot even learn whether the record
   * exists. The request names the instant of the read as its data range ([now, now]).
   * The row's SELECT runs while the decision is being made durable (fetching ciphertext is not
   * releasing it), saving a round trip; its outcome, found or not, is looked at only after the
   * decision resolved and allowed the read, so a denial or a failed audit write always wins.
   */
  async read(
    principal: Principal,
    key: TokenKey,
    opts: { refresh: "auto" | "never" | "force"; purpose?: string },
  ): Promise<TokenReadResult> {
    const { refresher, clock } = this.#d;
    const now = clock.now();
    let row = await this.#decidedRow(principal, key, now, opts.purpose);
    let refreshed = false;
    let plain: { accessToken: string; refreshToken: string | null } | undefined;
    let due = opts.refresh === "auto" && refresher.wants(row, now);
    let force = false;
    if (opts.refresh === "force" && refresher.canRefresh(row)) {
      // At most one forced refresh per token per FORCED_REFRESH_INTERVAL_MS, across processes: the
      // refresher takes the claim under the token's lock after re-reading the row (src/tokens/forced.ts);
      // a forced read that finds a refresh done since it read the row gets that fresh token.
      force = true;
      due = true;
    }
    if (due) {
      const outcome = await refresher.refresh(row, principal.requesterId, { force });
      row = outcome.row;
      if (outcome.status === "refreshed") {
        refreshed = true;
        plain = outcome.plain;
      } else if (!isUnexpired(row, clock.now())) {
        if (outcome.permanent) throw reauthError(key, "the provider refused the refresh token");
        const retryAfterSeconds = Math.max(
          1,
          Math.ceil(((outcome.retryAt ?? clock.now() + 1000) - clock.now()) / 1000),
        );
        if (outcome.reason === "backoff") {
          throw new RefreshBackoffError(
            `the token has expired and its provider failed recently; the next refresh attempt is in ${retryAfterSeconds} s`,
            retryAfterSeconds,
          );
        }
        throw new UpstreamError(
          "the token has expired and the provider could not refresh it just now; retry later",
          { reason: outcome.reason },
          retryAfterSeconds,
        );
      }
    } else if (opts.refresh !== "never" && !isUnexpired(row, now)) {
      // Expired with no refresh token: a state of its own (needs-reauth, audited once), not just an error.
      if (row.refreshToken === null) await refresher.markNeedsReauth(row, principal.requesterId, "no_refresh_token");
      throw reauthError(
        key,
        row.refreshStatus === "needs-reauth"
          ? "the provider refused the refresh token"
          : "the token has expired and cannot be refreshed",
      );
    }

    const accessToken = plain?.accessToken ?? (await this.#open(row, principal.requesterId, false)).accessToken;
    const readAt = clock.now();
    this.lastUsed.touch(row.id, readAt);
    return {
      integration: row.integration,
      userId: row.userId,
      accessToken,
      ...(row.expiresAt ? { expiresAt: row.expiresAt.toISOString() } : {}),
      ...(row.scope !== null ? { scope: row.scope } : {}),
      ...(row.tokenType !== null ? { tokenType: row.tokenType } : {}),
      issuedAt: row.issuedAt.toISOString(),
      lastUsed: new Date(readAt).toISOString(),
      refreshed,
      hasRefreshToken: row.refreshToken !== null,
    };
  }

  /**
   * The one way a refresh token leaves the service (role `exporter`, checked by path): a decision
   * like a read, then the stored record as it is (no refresh), audited TOKEN_EXPORTED.
   */
  async export(principal: Principal, key: TokenKey, opts: { purpose?: string } = {}): Promise<TokenExportResult> {
    const now = this.#d.clock.now();
    const row = await this.#decidedRow(principal, key, now, opts.purpose);
    const plain = await this.#open(row, principal.requesterId, true);
    await this.#d.audit.record({
      eventType: "TOKEN_EXPORTED",
      actor: principal.requesterId,
      target: tokenTarget(row.integration, row.userId),
      success: true,
      details: {
        withRefresh: plain.refreshToken !== null,
        keyVersion: row.keyVersion,
        rowVersion: Number(row.version),
      },
    });
    return {
      integration: row.integration,
      userId: row.userId,
      accessToken: plain.accessToken,
      ...(plain.refreshToken !== null ? { refreshToken: plain.refreshToken } : {}),
      ...(row.expiresAt ? { expiresAt: row.expiresAt.toISOString() } : {}),
      ...(row.scope !== null ? { scope: row.scope } : {}),
      ...(row.tokenType !== null ? { tokenType: row.tokenType } : {}),
      issuedAt: row.issuedAt.toISOString(),
    };
  }

  /**
   * The access decision comes first, so a denied caller cannot even learn whether the record
   * exists. The request names the instant of the read as its data range ([now, now]).
   * The row's SELECT runs while the decision is being made durable (fetching ciphertext is not
   * releasing it), saving a round trip; its outcome, found or not, is looked at only after the
   * decision resolved and allowed the read, so a denial or a failed audit write always wins.
   */
  async #decidedRow(principal: Principal, key: TokenKey, now: number, purpose: string | undefined): Promise<TokenRow> {
    const fetched = this.#findOrNull(key).then(
      (row) => ({ row, err: undefined }),
      (err: unknown) => ({ row: null, err }),
    );
    const { id: accessRequestId, decision } = await this.#d.decider.decide(principal, {
      resource: { type: "token", integration: key.integration, userId: key.userId },
      timeRange: { start: now, end: now },
      ...(purpose ? { purpose } : {}),
    });
    if (!decision.allowed)
      throw new TokenAccessDeniedError(decision.reason, {
        accessRequestId,
        policyId: decision.policyId,
        denialCode: decision.code,
      });
    const first = await fetched;
    if (first.err !== undefined) throw first.err;
    if (!first.row) throw new NotFoundError("token");
    return first.row;
  }

  /** Status is a decision like a read (403 when denied, one audit row either way); never a token value. */
  async status(principal: Principal, key: TokenKey, opts: { purpose?: string } = {}): Promise<TokenMetadata> {
    const now = this.#d.clock.now();
    return this.#metadata(await this.#decidedRow(principal, key, now, opts.purpose), now);
  }

  /**
   * Revokes at the provider (RFC 7009, where it has an endpoint), then deletes: the delete and its
   * TOKEN_DELETED row (with the revocation outcome) commit together. A provider failure does not
   * keep the record unless `revoke` is "required" (then 502, nothing deleted, a failed row).
   */
  async delete(
    principal: Principal,
    key: TokenKey,
    opts: { revoke?: Exclude<RevokeMode, "skip"> } = {},
  ): Promise<{ revocation: Revocation | null }> {
    const row = await this.#find(key);
    const target = tokenTarget(key.integration, key.userId);
    const revocation = this.#d.revoker
      ? await this.#d.revoker.revoke(row, principal.requesterId, opts.revoke ?? "best-effort")
      : null;
    if (opts.revoke === "required" && revocation?.outcome === "failed") {
      await this.#d.audit.record({
        eventType: "TOKEN_DELETED",
        actor: principal.requesterId,
        target,
        success: false,
        details: { integration: key.integration, userId: key.userId, count: 0, kept: true, revocation },
      });
      throw new UpstreamError(
        "the provider did not confirm the revocation, so the record was kept (revoke=required); retry later",
        { revocation },
      );
    }
    await this.#d.audit.apply({
      change: async (tx) => {
        const { count } = await tx.oAuthToken.deleteMany({
          where: { userId: key.userId, integration: key.integration },
        });
        if (count === 0) throw new NotFoundError("token");
        return count;
      },
      event: (count) => ({
        eventType: "TOKEN_DELETED",
        actor: principal.requesterId,
        target,
        success: true,
        details: { integration: key.integration, userId: key.userId, count, revocation },
      }),
    });
    return { revocation };
  }

  /**
   * Removes every token of one user (account deletion); idempotent, audited even when nothing
   * matched. Each record is revoked at its provider first (concurrently), as `delete` does; the
   * delete and its row commit together.
   */
  async deleteAllForUser(
    principal: Principal,
    userId: string,
    opts: { revoke?: Exclude<RevokeMode, "skip"> } = {},
  ): Promise<{ deleted: number; integrations: string[]; revocations: Array<Revocation & { integration: string }> }> {
    const { revoker } = this.#d;
    const existing = revoker ? await this.#d.db.prisma.oAuthToken.findMany({ where: { userId } }) : [];
    const revocations = await Promise.all(
      existing.map(async (row) => ({
        integration: row.integration,
        ...(await revoker!.revoke(row, principal.requesterId, opts.revoke ?? "best-effort")),
      })),
    );
    revocations.sort((x, y) => x.integration.localeCompare(y.integration));
    if (opts.revoke === "required" && revocations.some((r) => r.outcome === "failed")) {
      await this.#d.audit.record({
        eventType: "TOKEN_DELETED",
        actor: principal.requesterId,
        target: `user:${userId}`,
        success: false,
        details: { userId, count: 0, kept: true, revocations },
      });
      throw new UpstreamError(
        "a provider did not confirm a revocation, so the records were kept (revoke=required); retry later",
        { revocations },
      );
    }
    const integrations = await this.#d.audit.apply({
      change: async (tx) => {
        const rows = await tx.$queryRaw<
          Array<{ integration: string }>
        >`DELETE FROM oauth_tokens WHERE "userId" = ${userId} RETURNING integration`;
        return rows.map((r) => r.integration).sort();
      },
      event: (integrations) => ({
        eventType: "TOKEN_DELETED",
        actor: principal.requesterId,
        target: `user:${userId}`,
        success: true,
        details: { userId, count: integrations.length, integrations, revocations },
      }),
    });
    return { deleted: integrations.length, integrations, revocations };
  }

  /**
   * Metadata only, ordered by id; never a token value. A decision: each record of the page is
   * evaluated against the caller's policies as a read of it would be (without an access_requests
   * row each), only admitted ones are returned, and the request is one TOKENS_LISTED audit row
   * (filter, count). A page holds `limit` admitted items unless the rows end; nextCursor is the id
   * of the page's last (admitted) item, never of a row the caller was denied.
   */
  async list(
    principal: Principal,
    q: ListTokensQuery & { purpose?: string },
  ): Promise<{ items: TokenMetadata[]; nextCursor: string | null }> {
    const now = this.#d.clock.now();
    const who = { requesterId: principal.requesterId, department: principal.department };
    const allowed = (r: TokenRow) =>
      this.#d.decider.evaluate(who, {
        resource: { type: "token", integration: r.integration, userId: r.userId },
        timeRange: { start: now, end: now },
        ...(q.purpose ? { purpose: q.purpose } : {}),
      }).allowed;
    // The cursor may only ever name an admitted row (a denied row's id would leak its creation
    // time, and its mere presence how many rows a filter matches): scan on, in chunks, until one
    // admitted row past the page is found or the rows end.
    const want = q.limit + 1;
    const chunk = Math.max(want, LIST_SCAN_CHUNK);
    const admitted: TokenRow[] = [];
    let after = q.cursor;
    let examined = 0;
    for (;;) {
      const rows = await this.#d.db.prisma.oAuthToken.findMany({
        where: {
          ...(q.userId ? { userId: q.userId } : {}),
          ...(q.integration ? { integration: q.integration } : {}),
          ...(after ? { id: { gt: after } } : {}),
        },
        orderBy: { id: "asc" },
        take: chunk,
      });
      for (const r of rows) {
        examined++;
        if (allowed(r) && admitted.push(r) >= want) break;
      }
      if (admitted.length >= want || rows.length < chunk) break;
      after = rows.at(-1)!.id;
    }
    const page = admitted.slice(0, q.limit);
    await this.#d.audit.record({
      eventType: "TOKENS_LISTED",
      actor: principal.requesterId,
      target: "tokens",
      success: true,
      details: {
        filter: {
          userId: q.userId ?? null,
          integration: q.integration ?? null,
          cursor: q.cursor ?? null,
          limit: q.limit,
        },
        count: page.length,
        examined,
        keyId: principal.keyId,
      },
    });
    return {
      items: page.map((r) => this.#metadata(r, now)),
      nextCursor: admitted.length > q.limit ? page.at(-1)!.id : null,
    };
  }

  async close(): Promise<void> {
    await this.lastUsed.close();
  }

  async #find(key: TokenKey): Promise<TokenRow> {
    const row = await this.#findOrNull(key);
    if (!row) throw new NotFoundError("token");
    return row;
  }

  #findOrNull(key: TokenKey): Promise<TokenRow | null> {
    return this.#d.db.prisma.oAuthToken.findUnique({
      where: { userId_integration: { userId: key.userId, integration: key.integration } },
    });
  }

  /**
   * Opens both fields of whatever version the row names. If a key rotation re-sealed the row and
   * retired the old version between our SELECT and the open, read the row again once.
   */
  async #open(
    row: TokenRow,
    actor: string,
    withRefresh: boolean,
  ): Promise<{ accessToken: string; refreshToken: string | null }> {
    for (let attempt = 0; ; attempt++) {
      try {
        // KeyService.openToken reports a retired version as DecryptionFailedError (cause KeyUnavailableError);
        // openField hands that cause back unaudited on the first attempt so the row can be re-read.
        const opts = { keyGoneRetryable: attempt === 0 };
        const [accessToken, refreshToken] = await Promise.all([
          openField(this.#d, row, "access", actor, opts),
          !withRefresh || row.refreshToken === null ? null : openField(this.#d, row, "refresh", actor, opts),
        ]);
        return { accessToken, refreshToken };
      } catch (err) {
        if (!(err instanceof KeyUnavailableError) || attempt > 0) throw err;
        row = await this.#find(row);
      }
    }
  }

  #metadata(row: TokenRow, now: number): TokenMetadata {
    return {
      integration: row.integration,
      userId: row.userId,
      expiresAt: iso(row.expiresAt),
      scope: row.scope,
      tokenType: row.tokenType,
      hasRefreshToken: row.refreshToken !== null,
      refreshStatus: refreshState(row.refreshStatus),
      refreshReason: row.refreshReason,
      nextRefreshAt: iso(row.nextRefreshAt),
      status: this.#status(row, now),
      keyVersion: row.keyVersion,
      issuedAt: row.issuedAt.toISOString(),
      lastUsed: iso(row.lastUsed),
      createdAt: row.createdAt.toISOString(),
      updatedAt: row.updatedAt.toISOString(),
      ipAddress: row.ipAddress,
      userAgent: row.userAgent,
    };
  }

  /**
   * valid: usable now (no expiry, or not yet expired — a read may still refresh it early).
   * expired: past its expiry, but a read will refresh it. needs-reauth: the provider refused the
   * refresh token, or it is expired with no refresh token or no provider configured.
   */
  #status(row: TokenRow, now: number): TokenStatus {
    if (row.refreshStatus === "needs-reauth") return "needs-reauth";
    if (isUnexpired(row, now)) return "valid";
    return row.refreshToken !== null && this.#d.refresher.provider(row.integration) !== null
      ? "expired"
      : "needs-reauth";
  }
}

function isUnexpired(row: Pick<TokenRow, "expiresAt">, now: number): boolean {
  return row.expiresAt === null || row.expiresAt.getTime() > now;
}

function reauthError(key: TokenKey, why: string): ReauthRequiredError {
  return new ReauthRequiredError(
    `${why}: the user must re-authenticate with ${key.integration} and the new token be stored again`,
    { integration: key.integration, userId: key.userId },
  );
}

/** The compare-and-set of a store missed (a concurrent write): seal again for the new row version. */
class StoreRaced extends Error {}
