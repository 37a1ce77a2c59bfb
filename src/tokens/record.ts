/**
 * The encrypted token record: which context each field is sealed under, sealing a record's fields
 * under one key version, and opening a field so that a ciphertext moved to another row, field or
 * row version fails — and that failure is audited before anyone hears about it.
 *
 * Token convention (binding for every writer): each token column holds a v2 token envelope
 * (`KeyService.sealToken`, src/crypto/token-envelope.ts) whose ctx is
 * `["chronokms/oauth-token/v2", integration, userId, field, rowVersion]`, where rowVersion is the
 * `version` the row has once that write commits; `keyVersion` = the master key version sealed
 * under. A write that bumps `version` must re-seal both fields; a write that changes no ciphertext
 * (refresh status, lastUsed, forcedRefreshAt) must not bump it. v1 envelopes (ECDH-ES to a slice
 * key, ctx `oauth:<integration>:<userId>:<field>`) remain readable until a rotation re-seals them.
 */
import type { AuditSink } from "../audit/types.ts";
import { tokenContext, type TokenField } from "../crypto/index.ts";
import type { OAuthToken } from "../db/generated/client.ts";
import { DecryptionFailedError, KeyUnavailableError } from "../errors.ts";
import { envelopeKeyVersion } from "../keys/rewrappable.ts";
import type { KeyService } from "../keys/types.ts";

export type TokenRow = OAuthToken;
export type { TokenField };
export { tokenContext };

/** v1's ctx (ambiguous when identifiers contain ':'), accepted only for v1 envelopes. */
export function legacyTokenContext(integration: string, userId: string, field: TokenField): string {
  return `oauth:${integration}:${userId}:${field}`;
}

export function tokenTarget(integration: string, userId: string): string {
  return `token:${integration}:${userId}`;
}

export interface SealedTokens {
  accessToken: string;
  refreshToken: string | null;
  keyVersion: number;
}

/**
 * Seals both fields for the row version `rowVersion` (the version the write will create), under
 * one key version. A rotation landing between the two seals would leave them under different
 * versions; the row names a single `keyVersion`, so seal again until both agree.
 */
export async function sealTokens(
  keys: KeyService,
  ids: { integration: string; userId: string },
  plain: { accessToken: string; refreshToken: string | null },
  rowVersion: number,
): Promise<SealedTokens> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const access = await keys.sealToken(plain.accessToken, {
      ctx: tokenContext(ids.integration, ids.userId, "access", rowVersion),
    });
    if (plain.refreshToken === null) return { accessToken: access.jwe, refreshToken: null, keyVersion: access.version };
    const refresh = await keys.sealToken(plain.refreshToken, {
      ctx: tokenContext(ids.integration, ids.userId, "refresh", rowVersion),
    });
    if (refresh.version === access.version)
      return { accessToken: access.jwe, refreshToken: refresh.jwe, keyVersion: access.version };
  }
  throw new Error("key version kept changing while sealing a token record");
}

/** What a field's envelope must name: this row, this field, this row version. */
export function fieldContexts(
  row: Pick<TokenRow, "integration" | "userId" | "version"> & { integrationCtx?: string | null },
  field: TokenField,
): { ctx: string; legacyCtx: string } {
  // A row lower-cased by the lowercase_integrations migration keeps the spelling its ciphertexts
  // name in integrationCtx until it is re-sealed (every re-seal clears it).
  const integration = row.integrationCtx ?? row.integration;
  return {
    ctx: tokenContext(integration, row.userId, field, Number(row.version)),
    legacyCtx: legacyTokenContext(integration, row.userId, field),
  };
}

export { envelopeKeyVersion };

/**
 * What a field's envelope must name (this row, field, row version) and the key version it must name
 * (the row's `keyVersion`: else a forged keyVersion could hide the row from rewrap and retirement),
 * after checking the row's `version` is a valid row version. Any failure here, or in the key
 * service's check of the envelope against them, is a DecryptionFailedError: the row as stored does
 * not open. The envelope itself is parsed once, by the key service.
 */
export function checkedFieldContexts(
  row: Pick<TokenRow, "integration" | "userId" | "version" | "keyVersion"> & { integrationCtx?: string | null },
  field: TokenField,
): { ctx: string; legacyCtx: string; keyVersion: number } {
  try {
    return { ...fieldContexts(row, field), keyVersion: Number(row.keyVersion) };
  } catch (e) {
    throw e instanceof DecryptionFailedError ? e : new DecryptionFailedError(e);
  }
}

/**
 * Opens one field, checking its context names this row, field and row version. On failure, writes
 * DECRYPT_FAILED (who, which record, which field — never the ciphertext) and only then rethrows
 * the generic error; if that audit write fails, the caller gets its 503 instead.
 * With `keyGoneRetryable`, a ciphertext under a version retired since the row was read throws the
 * KeyUnavailableError unaudited instead: the caller re-reads the row (a rotation re-sealed it) and
 * opens again without the flag, so a real failure is still audited.
 */
export async function openField(
  deps: { keys: KeyService; audit: AuditSink },
  row: Pick<TokenRow, "integration" | "userId" | "accessToken" | "refreshToken" | "keyVersion" | "version"> & {
    integrationCtx?: string | null;
  },
  field: TokenField,
  actor: string,
  opts: { keyGoneRetryable?: boolean } = {},
): Promise<string> {
  const jwe = field === "access" ? row.accessToken : row.refreshToken;
  if (jwe === null) throw new Error(`openField: the row has no ${field} token`);
  try {
    const bytes = await deps.keys.openToken(jwe, checkedFieldContexts(row, field));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    if (!(err instanceof DecryptionFailedError) && !(err instanceof TypeError)) throw err;
    if (opts.keyGoneRetryable && err instanceof DecryptionFailedError && err.cause instanceof KeyUnavailableError)
      throw err.cause;
    await deps.audit.record({
      eventType: "DECRYPT_FAILED",
      actor,
      target: tokenTarget(row.integration, row.userId),
      success: false,
      details: { field, keyVersion: row.keyVersion, rowVersion: Number(row.version) },
    });
    throw err instanceof DecryptionFailedError ? err : new DecryptionFailedError(err);
  }
}
