/**
 * OAuth token records as a Rewrappable: re-seals `accessToken`/`refreshToken` of rows on an older
 * master key version, one SELECT and one compare-and-set UPDATE per batch.
 *
 * Token convention (binding for every writer): each token column holds a compact JWE from
 * `KeyService.seal` with ctx `oauth:<integration>:<userId>:<access|refresh>` and ts = write time;
 * `keyVersion` = the version sealed under; `version` = row version, bumped on every write.
 */
import type { Database } from "../db/database.ts";
import { readEnvelopeHeader, zeroize } from "../crypto/index.ts";
import { ChronoError } from "../errors.ts";
import type { Rewrappable } from "../keys/rewrap.ts";
import type { KeyService } from "../keys/types.ts";

export type TokenField = "access" | "refresh";

export function tokenCtx(integration: string, userId: string, field: TokenField): string {
  return `oauth:${integration}:${userId}:${field}`;
}

interface Row {
  id: string;
  userId: string;
  integration: string;
  accessToken: string;
  refreshToken: string | null;
  version: number;
}

export function oauthTokenRewrappable(db: Database): Rewrappable {
  const prisma = db.prisma;
  return {
    name: "oauth_tokens",

    async countByVersion() {
      const rows = await prisma.$queryRawUnsafe<{ v: number; n: number }[]>(
        `SELECT "keyVersion" AS v, count(*)::int AS n FROM "oauth_tokens" GROUP BY "keyVersion"`,
      );
      return new Map(rows.map((r) => [Number(r.v), Number(r.n)]));
    },

    async rewrapBatch(keys: KeyService, { targetVersion, limit }) {
      const rows = await prisma.$queryRawUnsafe<Row[]>(
        `SELECT "id"::text AS "id", "userId", "integration", "accessToken", "refreshToken", "version"
           FROM "oauth_tokens" WHERE "keyVersion" <> $1::int ORDER BY "id" LIMIT $2::int`,
        targetVersion,
        limit,
      );
      if (rows.length === 0) return 0;
      const params: unknown[] = [];
      const tuples: string[] = [];
      for (const row of rows) {
        const access = await reseal(keys, row, "access", row.accessToken);
        const refresh = row.refreshToken === null ? null : await reseal(keys, row, "refresh", row.refreshToken);
        // Normally both are on the active version; if a rotation happened mid-batch, the row names the
        // version it really is under and a later pass moves it again.
        if (refresh && refresh.version !== access.version) continue;
        const i = params.length;
        tuples.push(`($${i + 1}::uuid, $${i + 2}::int, $${i + 3}::text, $${i + 4}::text, $${i + 5}::int)`);
        params.push(row.id, Number(row.version), access.jwe, refresh?.jwe ?? null, access.version);
      }
      if (tuples.length === 0) return 0;
      // One statement per batch; the WHERE on "version" is the compare-and-set: a row a token write
      // changed since our SELECT is left alone (its new value is already sealed by that writer).
      return prisma.$executeRawUnsafe(
        `UPDATE "oauth_tokens" AS t
            SET "accessToken" = v.a, "refreshToken" = v.r, "keyVersion" = v.kv, "version" = t."version" + 1
           FROM (VALUES ${tuples.join(", ")}) AS v(id, old, a, r, kv)
          WHERE t."id" = v.id AND t."version" = v.old`,
        ...params,
      );
    },
  };
}

/** Opens with the ctx this very row and field must carry, re-seals with the same ctx and original ts. */
async function reseal(keys: KeyService, row: Row, field: TokenField, jwe: string) {
  const ctx = tokenCtx(row.integration, row.userId, field);
  let plaintext: Uint8Array;
  let ts: number;
  try {
    ts = readEnvelopeHeader(jwe).ts;
    plaintext = await keys.open(jwe, { expectedCtx: ctx });
  } catch (cause) {
    throw new ChronoError(
      "DECRYPTION_FAILED",
      `oauth_tokens row ${row.id} (${row.integration}, ${field} token) does not decrypt, so it cannot be re-encrypted; inspect or delete that row, then rerun`,
      { cause },
    );
  }
  try {
    return await keys.seal(plaintext, { ctx, ts });
  } finally {
    zeroize(plaintext);
  }
}
