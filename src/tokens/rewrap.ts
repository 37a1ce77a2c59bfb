/**
 * OAuth token records as a Rewrappable: re-seals `accessToken`/`refreshToken` of rows on an older
 * master key version, or still in the v1 envelope format, as v2 token envelopes under the active
 * version: one SELECT per batch (keyset by id), then compare-and-set UPDATEs per chunk as chunks
 * are re-sealed. A row that does not open is skipped, audited DECRYPT_FAILED and reported, so one
 * damaged row never stalls the run. Format and ctx: src/tokens/record.ts.
 */
import type { AuditSink } from "../audit/types.ts";
import { TOKEN_ENVELOPE_PREFIX } from "../crypto/index.ts";
import type { Database } from "../db/database.ts";
import type { FailedRecord, Rewrappable, SqlClient } from "../keys/rewrap.ts";
import type { KeyService, TokenResealRequest } from "../keys/types.ts";
import { envelopeKeyVersion, fieldContexts, tokenContext, tokenTarget, type TokenField } from "./record.ts";

interface Row {
  id: string;
  userId: string;
  integration: string;
  integrationCtx: string | null;
  accessToken: string;
  refreshToken: string | null;
  keyVersion: number;
  version: number;
}

const REWRAP_ACTOR = "system:rewrap";
/** Rows still in the v1 format (any v2 envelope begins with this; LIKE needs no escaping for it). */
const LEGACY_SQL = `("accessToken" NOT LIKE '${TOKEN_ENVELOPE_PREFIX}%' OR ("refreshToken" IS NOT NULL AND "refreshToken" NOT LIKE '${TOKEN_ENVELOPE_PREFIX}%'))`;

/**
 * The row's envelopes name its `keyVersion`: both v2 values begin with the base64url of
 * `{"alg":"dir","enc":"A256GCM","kid":"tok:<keyVersion>","salt":"` (the sealer writes the header
 * members in this order; whole base64 groups only). A row that fails this (a forged keyVersion, or
 * a v1 value) is pending for rewrap whatever its keyVersion says, and is counted under the
 * versions its envelopes name too, so retirement cannot be fooled by the column.
 */
const KID_HEADER = `('{"alg":"dir","enc":"A256GCM","kid":"tok:' || "keyVersion"::text || '","salt":"')`;
const KID_PREFIX = `left(translate(encode(convert_to(${KID_HEADER}, 'UTF8'), 'base64'), E'+/=\\n', '-_'), (octet_length(${KID_HEADER}) / 3) * 4)`;
const CONSISTENT_SQL = `(left("accessToken", length(${KID_PREFIX})) = ${KID_PREFIX} AND ("refreshToken" IS NULL OR left("refreshToken", length(${KID_PREFIX})) = ${KID_PREFIX}))`;

export function oauthTokenRewrappable(db: Database, audit?: AuditSink): Rewrappable {
  const prisma = db.prisma;
  return {
    name: "oauth_tokens",

    async countByVersion() {
      const rows = await prisma.$queryRawUnsafe<{ v: number; n: number }[]>(
        `SELECT "keyVersion" AS v, count(*)::int AS n FROM "oauth_tokens" WHERE ${CONSISTENT_SQL} OR ${LEGACY_SQL} GROUP BY "keyVersion"`,
      );
      const counts = new Map(rows.map((r) => [Number(r.v), Number(r.n)]));
      // v2 rows whose keyVersion does not match their envelopes (only ever a tampered row): counted
      // under every version involved, so none of them can be retired while the row needs it.
      const odd = await prisma.$queryRawUnsafe<Array<{ a: string; r: string | null; kv: number }>>(
        `SELECT "accessToken" AS a, "refreshToken" AS r, "keyVersion" AS kv FROM "oauth_tokens" WHERE NOT ${CONSISTENT_SQL} AND NOT ${LEGACY_SQL}`,
      );
      for (const row of odd) {
        const versions = new Set([Number(row.kv)]);
        for (const jwe of [row.a, row.r]) {
          if (jwe === null) continue;
          try {
            versions.add(envelopeKeyVersion(jwe));
          } catch {
            // malformed: it opens under no version; keyVersion still counts it
          }
        }
        for (const v of versions) counts.set(v, (counts.get(v) ?? 0) + 1);
      }
      return counts;
    },

    async countLegacy(client: SqlClient = prisma) {
      const rows = await client.$queryRawUnsafe<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM "oauth_tokens" WHERE ${LEGACY_SQL}`,
      );
      return Number(rows[0]?.n ?? 0);
    },

    async listByVersion(version: number, limit: number) {
      const rows = await prisma.$queryRawUnsafe<Array<{ id: string; integration: string; userId: string }>>(
        `SELECT "id"::text AS "id", "integration", "userId" FROM "oauth_tokens" WHERE "keyVersion" = $1::int OR (NOT ${CONSISTENT_SQL} AND NOT ${LEGACY_SQL}) ORDER BY "id" LIMIT $2::int`,
        version,
        limit,
      );
      return rows.map((r) => ({ id: r.id, label: tokenTarget(r.integration, r.userId) }));
    },

    async rewrapBatch(keys: KeyService, { targetVersion, limit, after, skip }) {
      const rows = await prisma.$queryRawUnsafe<Row[]>(
        `SELECT "id"::text AS "id", "userId", "integration", "integrationCtx", "accessToken", "refreshToken", "keyVersion", "version"
           FROM "oauth_tokens"
          WHERE ("keyVersion" <> $1::int OR ${LEGACY_SQL} OR NOT ${CONSISTENT_SQL} OR "integrationCtx" IS NOT NULL) AND ($3::uuid IS NULL OR "id" > $3::uuid)
          ORDER BY "id" LIMIT $2::int`,
        targetVersion,
        limit,
        after ?? null,
      );
      const next = rows.length === limit ? rows.at(-1)!.id : null;
      const todo = skip ? rows.filter((r) => !skip.has(r.id)) : rows;
      if (todo.length === 0) return { moved: 0, failed: [], next };
      // The chunks re-seal in parallel (worker threads) and each is written back as soon as it is
      // sealed, so the database works while later chunks are still being sealed.
      const parts: Row[][] = [];
      for (let i = 0; i < todo.length; i += WRITE_CHUNK) parts.push(todo.slice(i, i + WRITE_CHUNK));
      let moved = 0;
      const failed: Array<FailedRecord & { row: Row }> = [];
      for (const r of await Promise.all(
        parts.map(async (chunk) => {
          const { sealed, failed: bad } = await resealChunk(keys, chunk);
          return { moved: await write(sealed), bad };
        }),
      )) {
        moved += r.moved;
        failed.push(...r.bad);
      }
      for (const f of failed) await auditFailure(f);
      return { moved, failed: failed.map(({ id, label, field }) => ({ id, label, field })), next };
    },
  };

  async function auditFailure(f: FailedRecord & { row: Row }) {
    if (!audit) return;
    const row = f.row;
    await audit.record({
      eventType: "DECRYPT_FAILED",
      actor: REWRAP_ACTOR,
      target: tokenTarget(row.integration, row.userId),
      success: false,
      details: {
        field: f.field ?? null,
        keyVersion: Number(row.keyVersion),
        rowVersion: Number(row.version),
        during: "rewrap",
      },
    });
  }

  /**
   * One statement per chunk; the WHERE on "version" is the compare-and-set: a row a token write
   * changed since our SELECT is left alone (its new value is already sealed by that writer). The
   * new ciphertexts name version + 1, the version this statement gives the row.
   */
  async function write(sealed: Resealed[]): Promise<number> {
    if (sealed.length === 0) return 0;
    // Locks in id order first, as the lastUsed flush does, so concurrent multi-row writers never deadlock.
    return prisma.$transaction(
      async (tx) => {
        await tx.$queryRawUnsafe(
          `SELECT 1 FROM "oauth_tokens" WHERE "id" = ANY($1::uuid[]) ORDER BY "id" FOR UPDATE`,
          sealed.map((r) => r.id),
        );
        return tx.$executeRawUnsafe(
          `UPDATE "oauth_tokens" AS t
          SET "accessToken" = v.a, "refreshToken" = v.r, "keyVersion" = v.kv, "version" = t."version" + 1, "integrationCtx" = NULL
         FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::int[]) AS v(id, old, a, r, kv)
        WHERE t."id" = v.id AND t."version" = v.old`,
          sealed.map((r) => r.id),
          sealed.map((r) => r.oldRowVersion),
          sealed.map((r) => r.access),
          sealed.map((r) => r.refresh),
          sealed.map((r) => r.keyVersion),
        );
      },
      { maxWait: 10_000, timeout: 30_000 },
    );
  }
}

/** Rows per write-back statement (and per unit of sealing work handed out). */
const WRITE_CHUNK = 250;

interface Resealed {
  id: string;
  oldRowVersion: number;
  access: string;
  refresh: string | null;
  keyVersion: number;
}

function request(row: Row, field: TokenField, jwe: string): TokenResealRequest {
  return {
    jwe,
    ...fieldContexts(row, field),
    newCtx: tokenContext(row.integration, row.userId, field, Number(row.version) + 1),
  };
}

/** Both fields of every row in one `resealTokens` call, so they all land on one version. */
async function resealChunk(
  keys: KeyService,
  all: Row[],
): Promise<{ sealed: Resealed[]; failed: Array<FailedRecord & { row: Row }> }> {
  const items: TokenResealRequest[] = [];
  const failed: Array<FailedRecord & { row: Row }> = [];
  const rows: Row[] = [];
  for (const row of all) {
    // A row whose bookkeeping is bad (e.g. a `version` no ctx can name) does not open: failed, skipped.
    let reqs: TokenResealRequest[];
    try {
      reqs = [
        request(row, "access", row.accessToken),
        ...(row.refreshToken !== null ? [request(row, "refresh", row.refreshToken)] : []),
      ];
    } catch {
      failed.push({ id: row.id, label: tokenTarget(row.integration, row.userId), field: "access", row });
      continue;
    }
    rows.push(row);
    items.push(...reqs);
  }
  if (rows.length === 0) return { sealed: [], failed };
  const { version, jwes } = await keys.resealTokens(items);
  const sealed: Resealed[] = [];
  let k = 0;
  for (const row of rows) {
    const access = jwes[k++] ?? null;
    const refresh = row.refreshToken === null ? null : (jwes[k++] ?? null);
    if (access === null || (row.refreshToken !== null && refresh === null)) {
      const field = access === null ? "access" : "refresh";
      failed.push({ id: row.id, label: tokenTarget(row.integration, row.userId), field, row });
      continue;
    }
    sealed.push({ id: row.id, oldRowVersion: Number(row.version), access, refresh, keyVersion: version });
  }
  return { sealed, failed };
}
