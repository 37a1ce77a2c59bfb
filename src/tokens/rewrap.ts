/**
 * OAuth token records as a Rewrappable: the `oauth_tokens` table described for the generic engine
 * (src/keys/rewrappable.ts), which re-seals `accessToken`/`refreshToken` of rows on an older master
 * key version, or still in the v1 envelope format, as v2 token envelopes under the active version.
 * The ctx of each field is the one definition in src/tokens/record.ts.
 */
import type { AuditSink } from "../audit/types.ts";
import type { Database } from "../db/database.ts";
import { type EncryptedTable, rewrappable } from "../keys/rewrappable.ts";
import type { Rewrappable } from "../keys/rewrap.ts";
import { fieldContexts, tokenContext, tokenTarget, type TokenField, type TokenRow } from "./record.ts";

type Stored = Pick<TokenRow, "id" | "userId" | "integration" | "integrationCtx" | "version" | "keyVersion">;

export const OAUTH_TOKENS_TABLE: EncryptedTable<Stored> = {
  name: "oauth_tokens",
  table: "oauth_tokens",
  id: "id",
  rowVersion: "version",
  keyVersion: "keyVersion",
  fields: [
    { name: "access", column: "accessToken" },
    { name: "refresh", column: "refreshToken", nullable: true },
  ],
  columns: ["userId", "integration", "integrationCtx"],
  contexts: (row, field) => fieldContexts(row, field as TokenField),
  newContext: (row, field, next) => tokenContext(row.integration, row.userId, field as TokenField, next),
  label: (row) => tokenTarget(row.integration, row.userId),
  // A row lower-cased by the lowercase_integrations migration keeps the spelling its ciphertexts
  // name in integrationCtx until it is re-sealed; the re-seal names the current spelling.
  pendingWhen: `"integrationCtx" IS NOT NULL`,
  onReseal: `"integrationCtx" = NULL`,
};

export function oauthTokenRewrappable(db: Database, audit?: AuditSink): Rewrappable {
  return rewrappable(db, OAUTH_TOKENS_TABLE, audit);
}
