/**
 * Token reads: the access decision, then the record (refreshed when due) opened and returned
 * without its refresh token; the export (role exporter) returns the stored record as it is.
 */
import type { Principal } from "../access/principal.ts";
import {
  ChronoError,
  KeyUnavailableError,
  NotFoundError,
  ReauthRequiredError,
  RefreshBackoffError,
  UpstreamError,
} from "../errors.ts";
import { isUnexpired } from "./metadata.ts";
import { openField, tokenTarget, type TokenRow } from "./record.ts";
import type { TokenKey } from "./repository.ts";
import type { VaultContext } from "./vault-deps.ts";

/**
 * How fresh the stored lastUsed is kept: a read writes it only when the stored time is at least this
 * old (AWS IAM and GitHub report "last used" coarser still). The read's answer always names the read.
 */
export const LAST_USED_RESOLUTION_MS = 60_000;

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

export async function readToken(
  v: VaultContext,
  principal: Principal,
  key: TokenKey,
  opts: { refresh: "auto" | "never" | "force"; purpose?: string },
): Promise<TokenReadResult> {
  const { refresher, clock } = v;
  const now = clock.now();
  let row = await decidedRow(v, principal, key, now, opts.purpose);
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
      const retryAfterSeconds = Math.max(1, Math.ceil(((outcome.retryAt ?? clock.now() + 1000) - clock.now()) / 1000));
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

  const accessToken = plain?.accessToken ?? (await openRow(v, row, principal.requesterId, false)).accessToken;
  const readAt = clock.now();
  // Stored with a resolution of a minute: a token read many times a second costs one row update a
  // minute, not one per flush (each a non-HOT-sized write that competed with the audit commits).
  if (row.lastUsed === null || readAt - row.lastUsed.getTime() >= LAST_USED_RESOLUTION_MS)
    v.lastUsed.touch(row.id, readAt);
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
export async function exportToken(
  v: VaultContext,
  principal: Principal,
  key: TokenKey,
  opts: { purpose?: string },
): Promise<TokenExportResult> {
  const row = await decidedRow(v, principal, key, v.clock.now(), opts.purpose);
  const plain = await openRow(v, row, principal.requesterId, true);
  await v.audit.record({
    eventType: "TOKEN_EXPORTED",
    actor: principal.requesterId,
    target: tokenTarget(row.integration, row.userId),
    success: true,
    details: { withRefresh: plain.refreshToken !== null, keyVersion: row.keyVersion, rowVersion: Number(row.version) },
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
export async function decidedRow(
  v: VaultContext,
  principal: Principal,
  key: TokenKey,
  now: number,
  purpose: string | undefined,
): Promise<TokenRow> {
  const fetched = v.repo.byKey(key).then(
    (row) => ({ row, err: undefined }),
    (err: unknown) => ({ row: null, err }),
  );
  const { id: accessRequestId, decision } = await v.decider.decide(principal, {
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

/**
 * Opens both fields of whatever version the row names. If a key rotation re-sealed the row and
 * retired the old version between our SELECT (or the cached copy) and the open, read the row from
 * the database again once.
 */
async function openRow(
  v: VaultContext,
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
        openField(v, row, "access", actor, opts),
        !withRefresh || row.refreshToken === null ? null : openField(v, row, "refresh", actor, opts),
      ]);
      return { accessToken, refreshToken };
    } catch (err) {
      if (!(err instanceof KeyUnavailableError) || attempt > 0) throw err;
      const again = await v.repo.fresh(row);
      if (!again) throw new NotFoundError("token");
      row = again;
    }
  }
}

function reauthError(key: TokenKey, why: string): ReauthRequiredError {
  return new ReauthRequiredError(
    `${why}: the user must re-authenticate with ${key.integration} and the new token be stored again`,
    { integration: key.integration, userId: key.userId },
  );
}
