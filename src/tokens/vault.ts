/**
 * The token vault: store, read (after the access decision; refreshed when due), status, delete,
 * list. Token values exist in the clear only in memory, between the caller and the KeyService.
 * Each operation lives in a module of its own (store, read, remove, list); this class binds them
 * to one set of dependencies, the record repository and the lastUsed tracker.
 */
import type { Principal } from "../access/principal.ts";
import { LastUsedTracker } from "./last-used.ts";
import { deleteAllForUser, deleteToken } from "./remove.ts";
import { listTokens } from "./list.ts";
import { metadataOf, type TokenMetadata } from "./metadata.ts";
import { decidedRow, exportToken, readToken, type TokenExportResult, type TokenReadResult } from "./read.ts";
import { tokenRepository, type TokenKey } from "./repository.ts";
import type { Revocation, RevokeMode } from "./revoke.ts";
import type { ListTokensQuery, StoreTokenBody } from "./schemas.ts";
import { storeToken } from "./store.ts";
import type { TokenVaultDeps, VaultContext } from "./vault-deps.ts";

export type { TokenMetadata, TokenStatus } from "./metadata.ts";
export { TokenAccessDeniedError, type TokenExportResult, type TokenReadResult } from "./read.ts";
export type { TokenKey } from "./repository.ts";
export type { TokenVaultDeps } from "./vault-deps.ts";
/** Forced refreshes of one token: at most one upstream call per this interval, across processes. */
export { FORCED_REFRESH_INTERVAL_MS } from "./forced.ts";

export class TokenVault {
  readonly #v: VaultContext;
  readonly lastUsed: LastUsedTracker;

  constructor(deps: TokenVaultDeps) {
    this.lastUsed = new LastUsedTracker(deps.db, deps.log, { flushMs: deps.lastUsedFlushMs });
    this.#v = { ...deps, repo: tokenRepository(deps.db), lastUsed: this.lastUsed };
  }

  /** PUT semantics: creates or wholly replaces the record (refresh status reset, version bumped). */
  store(
    principal: Principal,
    key: TokenKey,
    body: StoreTokenBody,
    meta: { ipAddress: string | null; userAgent: string | null },
  ): Promise<{ created: boolean; token: TokenMetadata }> {
    return storeToken(this.#v, principal, key, body, meta);
  }

  /** The access decision first, then the record, refreshed when due; never the refresh token. */
  read(
    principal: Principal,
    key: TokenKey,
    opts: { refresh: "auto" | "never" | "force"; purpose?: string },
  ): Promise<TokenReadResult> {
    return readToken(this.#v, principal, key, opts);
  }

  /** The stored record as it is, refresh token included (role exporter); audited TOKEN_EXPORTED. */
  export(principal: Principal, key: TokenKey, opts: { purpose?: string } = {}): Promise<TokenExportResult> {
    return exportToken(this.#v, principal, key, opts);
  }

  /** Status is a decision like a read (403 when denied, one audit row either way); never a token value. */
  async status(principal: Principal, key: TokenKey, opts: { purpose?: string } = {}): Promise<TokenMetadata> {
    const now = this.#v.clock.now();
    return metadataOf(await decidedRow(this.#v, principal, key, now, opts.purpose), now, this.#v.refresher);
  }

  delete(
    principal: Principal,
    key: TokenKey,
    opts: { revoke?: Exclude<RevokeMode, "skip"> } = {},
  ): Promise<{ revocation: Revocation | null }> {
    return deleteToken(this.#v, principal, key, opts);
  }

  deleteAllForUser(
    principal: Principal,
    userId: string,
    opts: { revoke?: Exclude<RevokeMode, "skip"> } = {},
  ): Promise<{ deleted: number; integrations: string[]; revocations: Array<Revocation & { integration: string }> }> {
    return deleteAllForUser(this.#v, principal, userId, opts);
  }

  list(
    principal: Principal,
    q: ListTokensQuery & { purpose?: string },
  ): Promise<{ items: TokenMetadata[]; nextCursor: string | null }> {
    return listTokens(this.#v, principal, q);
  }

  async close(): Promise<void> {
    await this.lastUsed.close();
  }
}
