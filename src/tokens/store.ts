/** Storing a token record: PUT semantics, sealed for the row version the write creates. */
import type { Principal } from "../access/principal.ts";
import { ConflictError } from "../errors.ts";
import { iso, metadataOf, type TokenMetadata } from "./metadata.ts";
import { sealTokens, tokenTarget, type TokenRow } from "./record.ts";
import type { TokenKey } from "./repository.ts";
import type { StoreTokenBody } from "./schemas.ts";
import type { VaultContext } from "./vault-deps.ts";

const STORE_ATTEMPTS = 5;

/** Creates or wholly replaces the record (refresh status reset, version bumped). */
export async function storeToken(
  v: VaultContext,
  principal: Principal,
  key: TokenKey,
  body: StoreTokenBody,
  meta: { ipAddress: string | null; userAgent: string | null },
): Promise<{ created: boolean; token: TokenMetadata }> {
  const now = v.clock.now();
  const at = new Date(now);
  const expiresAt = body.expiresAt === undefined ? null : new Date(body.expiresAt);
  const plain = { accessToken: body.accessToken, refreshToken: body.refreshToken ?? null };
  // The ciphertexts name the row version this write creates, so it is read first and the write
  // is a compare-and-set on it: a concurrent write in between makes us seal again. The row and
  // its TOKEN_STORED audit row commit together (one transaction of the audit writer).
  let row: (TokenRow & { inserted: boolean }) | undefined;
  for (let attempt = 0; attempt < STORE_ATTEMPTS && !row; attempt++) {
    const prev = await v.repo.currentVersion(key);
    const s = await sealTokens(v.keys, key, plain, prev + 1);
    const fields = {
      ...key,
      ...s,
      expiresAt,
      scope: body.scope ?? null,
      tokenType: body.tokenType ?? null,
      at,
      ...meta,
    };
    try {
      row = await v.audit.apply({
        change: async (tx) => {
          const written = await v.repo.upsert(tx, fields, prev);
          if (!written) throw new StoreRaced();
          return written;
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
  if (!row) throw new ConflictError("the token record kept changing while it was being stored; retry");
  return { created: row.inserted, token: metadataOf(row, now, v.refresher) };
}

/** The compare-and-set of a store missed (a concurrent write): seal again for the new row version. */
class StoreRaced extends Error {}
