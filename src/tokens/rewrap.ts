/**
 * OAuth token records as a Rewrappable: re-seals `accessToken`/`refreshToken` of rows on an older
 * master key version: one SELECT per batch, then compare-and-set UPDATEs per chunk as chunks are re-sealed.
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
      if (!keys.resealMany) return write(await resealOneByOne(keys, rows));
      // The chunks re-seal in parallel (worker threads) and each is written back as soon as it is
      // sealed, so the database works while later chunks are still being sealed. (Fetching the next
      // chunk while sealing this one measured slower here: the main thread is the scarce resource.)
      const resealMany = keys.resealMany.bind(keys);
      const parts: Row[][] = [];
      for (let i = 0; i < rows.length; i += WRITE_CHUNK) parts.push(rows.slice(i, i + WRITE_CHUNK));
      let moved = 0;
      for (const n of await Promise.all(parts.map(async (chunk) => write(await resealChunk(resealMany, chunk))))) moved += n;
      return moved;
    },
  };

  /**
   * One statement per chunk; the WHERE on "version" is the compare-and-set: a row a token write
   * changed since our SELECT is left alone (its new value is already sealed by that writer).
   */
  async function write(sealed: Resealed[]): Promise<number> {
    if (sealed.length === 0) return 0;
    // Five array parameters rather than five per row: the statement stays the same size (and cheap
    // for Prisma to prepare) whatever the chunk size.
    return prisma.$executeRawUnsafe(
      `UPDATE "oauth_tokens" AS t
          SET "accessToken" = v.a, "refreshToken" = v.r, "keyVersion" = v.kv, "version" = t."version" + 1
         FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::int[]) AS v(id, old, a, r, kv)
        WHERE t."id" = v.id AND t."version" = v.old`,
      sealed.map((r) => r.id),
      sealed.map((r) => r.oldRowVersion),
      sealed.map((r) => r.access),
      sealed.map((r) => r.refresh),
      sealed.map((r) => r.keyVersion),
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

function undecryptable(row: Row, field: TokenField, cause?: unknown): ChronoError {
  return new ChronoError(
    "DECRYPTION_FAILED",
    `oauth_tokens row ${row.id} (${row.integration}, ${field} token) does not decrypt, so it cannot be re-encrypted; inspect or delete that row, then rerun`,
    { cause },
  );
}

/** Both fields of every row in one `resealMany` call, so they all land on one version. */
async function resealChunk(resealMany: NonNullable<KeyService["resealMany"]>, rows: Row[]): Promise<Resealed[]> {
  const items: Array<{ jwe: string; ctx: string }> = [];
  for (const row of rows) {
    items.push({ jwe: row.accessToken, ctx: tokenCtx(row.integration, row.userId, "access") });
    if (row.refreshToken !== null) items.push({ jwe: row.refreshToken, ctx: tokenCtx(row.integration, row.userId, "refresh") });
  }
  const { version, jwes } = await resealMany(items);
  const out: Resealed[] = [];
  let k = 0;
  for (const row of rows) {
    const access = jwes[k++];
    if (!access) throw undecryptable(row, "access");
    let refresh: string | null = null;
    if (row.refreshToken !== null) {
      refresh = jwes[k++] ?? null;
      if (!refresh) throw undecryptable(row, "refresh");
    }
    out.push({ id: row.id, oldRowVersion: Number(row.version), access, refresh, keyVersion: version });
  }
  return out;
}

/** For a KeyService without `resealMany`: open and seal field by field on this thread. */
async function resealOneByOne(keys: KeyService, rows: Row[]): Promise<Resealed[]> {
  const out: Resealed[] = [];
  for (const row of rows) {
    const access = await reseal(keys, row, "access", row.accessToken);
    const refresh = row.refreshToken === null ? null : await reseal(keys, row, "refresh", row.refreshToken);
    // Normally both are on the active version; if a rotation happened mid-batch, skip the row: a
    // later pass moves it.
    if (refresh && refresh.version !== access.version) continue;
    out.push({ id: row.id, oldRowVersion: Number(row.version), access: access.jwe, refresh: refresh?.jwe ?? null, keyVersion: access.version });
  }
  return out;
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
    throw undecryptable(row, field, cause);
  }
  try {
    return await keys.seal(plaintext, { ctx, ts });
  } finally {
    zeroize(plaintext);
  }
}
