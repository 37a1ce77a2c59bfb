/**
 * The encrypted token record: which context each field is sealed under, sealing a record's fields
 * under one key version, and opening a field so that a ciphertext moved to another row or field
 * fails — and that failure is audited before anyone hears about it.
 */
import type { AuditSink } from "../audit/types.ts";
import type { OAuthToken } from "../db/generated/client.ts";
import { DecryptionFailedError, KeyUnavailableError } from "../errors.ts";
import type { KeyService } from "../keys/types.ts";

export type TokenRow = OAuthToken;
export type TokenField = "access" | "refresh";

/** `oauth:<integration>:<userId>:<field>`; identifiers are validated so the string is unambiguous. */
export function tokenContext(integration: string, userId: string, field: TokenField): string {
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
 * Seals both fields under one key version, to the slice of `ts`. A rotation landing between the
 * two seals would leave them under different versions; the row names a single `keyVersion`, so
 * seal again until both agree (a second rotation within one retry is practically impossible).
 */
export async function sealTokens(
  keys: KeyService,
  ids: { integration: string; userId: string },
  plain: { accessToken: string; refreshToken: string | null },
  ts: number,
): Promise<SealedTokens> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const access = await keys.seal(plain.accessToken, { ctx: tokenContext(ids.integration, ids.userId, "access"), ts });
    if (plain.refreshToken === null) return { accessToken: access.jwe, refreshToken: null, keyVersion: access.version };
    const refresh = await keys.seal(plain.refreshToken, { ctx: tokenContext(ids.integration, ids.userId, "refresh"), ts });
    if (refresh.version === access.version) return { accessToken: access.jwe, refreshToken: refresh.jwe, keyVersion: access.version };
  }
  throw new Error("key version kept changing while sealing a token record");
}

/**
 * Opens one field, checking its context names this row and field. On failure, writes
 * DECRYPT_FAILED (who, which record, which field — never the ciphertext) and only then rethrows
 * the generic error; if that audit write fails, the caller gets its 503 instead.
 * With `keyGoneRetryable`, a ciphertext under a version retired since the row was read throws the
 * KeyUnavailableError unaudited instead: the caller re-reads the row (a rotation re-sealed it) and
 * opens again without the flag, so a real failure is still audited.
 */
export async function openField(
  deps: { keys: KeyService; audit: AuditSink },
  row: Pick<TokenRow, "integration" | "userId" | "accessToken" | "refreshToken" | "keyVersion">,
  field: TokenField,
  actor: string,
  opts: { keyGoneRetryable?: boolean } = {},
): Promise<string> {
  const jwe = field === "access" ? row.accessToken : row.refreshToken;
  if (jwe === null) throw new Error(`openField: the row has no ${field} token`);
  try {
    const bytes = await deps.keys.open(jwe, { expectedCtx: tokenContext(row.integration, row.userId, field) });
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    if (!(err instanceof DecryptionFailedError) && !(err instanceof TypeError)) throw err;
    if (opts.keyGoneRetryable && err instanceof DecryptionFailedError && err.cause instanceof KeyUnavailableError) throw err.cause;
    await deps.audit.record({
      eventType: "DECRYPT_FAILED",
      actor,
      target: tokenTarget(row.integration, row.userId),
      success: false,
      details: { field, keyVersion: row.keyVersion },
    });
    throw err instanceof DecryptionFailedError ? err : new DecryptionFailedError(err);
  }
}
