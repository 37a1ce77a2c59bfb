/**
 * The one owner of `oauth_tokens` SQL (the key rotation's re-seal, src/tokens/rewrap.ts, aside).
 * The read of a record by (userId, integration), on every token read, runs off Prisma's query
 * runtime (src/db/raw-query.ts) and, in the embedded database's owner, from a row cache
 * (src/tokens/row-cache.ts), dropped around every statement that may write the table, whoever
 * runs it (src/db/statement-watch.ts), and filled only while the schema holds nothing that writes
 * it behind a statement's back (src/tokens/row-cache-guard.ts). Writes inside a caller's audited
 * transaction take its `tx`.
 */
import type { AuditTx } from "../audit/types.ts";
import type { Database } from "../db/database.ts";
import { rawQuery, rawSelect } from "../db/raw-query.ts";
import { watchStatements } from "../db/statement-watch.ts";
import { pgArrayLiteral } from "../db/array-literal.ts";
import { TurnBatch } from "../db/turn-batch.ts";
import type { TokenRow } from "./record.ts";
import { TokenRowCache } from "./row-cache.ts";
import { LAST_USED_SQL, SchemaGuard, statementEffect } from "./row-cache-guard.ts";
import { type LoadOutcome, RowCacheWarmer } from "./row-cache-warm.ts";

export interface TokenKey {
  integration: string;
  userId: string;
}

/** The row as Prisma maps it: the same columns, names and JS types. */
const COLUMNS = `id::text AS id, "userId", integration, "accessToken", "refreshToken", "expiresAt", scope,
  "tokenType", "createdAt", "updatedAt", "lastUsed", "issuedAt", "ipAddress", "userAgent", "keyVersion", "refreshStatus",
  "refreshFailures", "nextRefreshAt", "refreshReason", version, "forcedRefreshAt", "integrationCtx"`;
const SELECT_BY_KEY = `SELECT ${COLUMNS} FROM oauth_tokens WHERE "userId" = $1 AND integration = $2`;
/**
 * The reads of one event-loop turn (src/db/turn-batch.ts): one probe of the unique index per
 * (userId, integration) pair. Written as a LATERAL join so that even the generic plan of the
 * prepared statement probes the index; `= ANY` on both columns planned as a bitmap scan of every
 * row of the integration.
 */
const SELECT_BY_KEYS = `SELECT t.* FROM unnest($1::text[], $2::text[]) AS k(u, i)
  CROSS JOIN LATERAL (SELECT ${COLUMNS} FROM oauth_tokens WHERE "userId" = k.u AND integration = k.i) t`;
/** The cache load's page (src/tokens/row-cache-warm.ts): bounded, so a load holds little in memory at once. */
const WARM_PAGE = 500;
const SELECT_PAGE = `SELECT ${COLUMNS} FROM oauth_tokens WHERE id > $1::uuid ORDER BY id LIMIT ${WARM_PAGE}`;

/** What a store or a refresh writes: sealed values under one key version, and what they describe. */
interface TokenContent {
  accessToken: string;
  refreshToken: string | null;
  keyVersion: number;
  expiresAt: Date | null;
  scope: string | null;
  tokenType: string | null;
}

export interface RefreshedFields extends TokenContent {
  issuedAt: Date;
}

export interface StoredFields extends TokenKey, TokenContent {
  at: Date;
  ipAddress: string | null;
  userAgent: string | null;
}

const repositories = new WeakMap<Database, TokenRepository>();

/** One repository (and so one row cache) per open database, shared by every module of the process. */
export function tokenRepository(db: Database): TokenRepository {
  let repo = repositories.get(db);
  if (!repo) {
    repo = new TokenRepository(db);
    repositories.set(db, repo);
  }
  return repo;
}

export class TokenRepository {
  readonly #db: Database;
  /** Only in the embedded database's owner (PGlite open in this process). */
  readonly cache: TokenRowCache | undefined;
  readonly #guard: SchemaGuard | undefined;
  #warmer: RowCacheWarmer | undefined;
  /** The hot read's batching, on PostgreSQL (the embedded owner reads from its cache). */
  readonly #reads: TurnBatch<TokenKey, TokenRow> | undefined;

  constructor(db: Database) {
    this.#db = db;
    if (db.kind === "postgres") this.#reads = new TurnBatch((keys) => this.#byKeys(keys));
    if (db.kind === "pglite" && db.pglite && !db.pool) {
      const cache = new TokenRowCache();
      const guard = new SchemaGuard(db);
      watchStatements(db.pglite, (sql) => {
        const effect = statementEffect(sql);
        if (effect === "none") return;
        cache.forgetAll();
        if (effect === "schema") guard.schemaMayHaveChanged();
        this.#warmer?.dropped();
      });
      this.cache = cache;
      this.#guard = guard;
    }
  }

  /**
   * The service's embedded owner: load the row cache now and again after writes drop it
   * (src/tokens/row-cache-warm.ts). Nothing on PostgreSQL. Returns what stops it before the
   * database closes.
   */
  warmCache(): () => Promise<void> {
    if (!this.cache) return async () => {};
    this.#warmer ??= new RowCacheWarmer((stopped) => this.#loadAll(stopped));
    this.#warmer.start();
    const warmer = this.#warmer;
    return () => warmer.stop();
  }

  async #loadAll(stopped: () => boolean): Promise<LoadOutcome> {
    const cache = this.cache!;
    let after = "00000000-0000-0000-0000-000000000000";
    for (;;) {
      const generation = cache.generation();
      const rows = await rawQuery<TokenRow>(this.#db, "chronokms_token_page", SELECT_PAGE, [after]);
      if (!(await this.#guard!.cacheable())) return "done";
      if (!cache.fillPage(generation, rows)) return generation === cache.generation() ? "done" : "interrupted";
      if (rows.length < WARM_PAGE) return "done";
      after = rows[rows.length - 1]!.id;
      await yieldToEventLoop();
      if (stopped()) return "interrupted";
    }
  }

  /**
   * The hot read: cached on the embedded owner; on PostgreSQL one statement for every read of the
   * event-loop turn; otherwise a prepared statement.
   */
  async byKey(key: TokenKey): Promise<TokenRow | null> {
    const hit = this.cache?.get(key.userId, key.integration);
    if (hit) return hit;
    return this.#reads ? this.#reads.get(key) : this.fresh(key);
  }

  async #byKeys(keys: readonly TokenKey[]): Promise<Array<TokenRow | null>> {
    if (keys.length === 1) {
      const [row] = await rawSelect<TokenRow>(this.#db, "chronokms_token_by_key", SELECT_BY_KEY, [
        keys[0]!.userId,
        keys[0]!.integration,
      ]);
      return [row ?? null];
    }
    const label = (userId: string, integration: string) => `${userId.length}:${userId}${integration}`;
    const unique = [...new Map(keys.map((k) => [label(k.userId, k.integration), k])).values()];
    const rows = await rawSelect<TokenRow>(this.#db, "chronokms_token_by_keys", SELECT_BY_KEYS, [
      pgArrayLiteral(unique.map((k) => k.userId)),
      pgArrayLiteral(unique.map((k) => k.integration)),
    ]);
    const found = new Map(rows.map((r) => [label(r.userId, r.integration), r]));
    return keys.map((k) => found.get(label(k.userId, k.integration)) ?? null);
  }

  /** Always from the database (and refills the cache). */
  async fresh(key: TokenKey): Promise<TokenRow | null> {
    const generation = this.cache?.generation() ?? 0;
    const [row] = await rawSelect<TokenRow>(this.#db, "chronokms_token_by_key", SELECT_BY_KEY, [
      key.userId,
      key.integration,
    ]);
    if (row && this.cache && (await this.#guard!.cacheable())) this.cache.fill(generation, row);
    return row ?? null;
  }

  byId(id: string): Promise<TokenRow | null> {
    return this.#db.prisma.oAuthToken.findUnique({ where: { id } });
  }

  async currentVersion(key: TokenKey): Promise<number> {
    const cur = await this.#db.prisma.oAuthToken.findUnique({
      where: { userId_integration: { userId: key.userId, integration: key.integration } },
      select: { version: true },
    });
    return cur ? Number(cur.version) : 0;
  }

  forUser(userId: string): Promise<TokenRow[]> {
    return this.#db.prisma.oAuthToken.findMany({ where: { userId } });
  }

  /** A page of rows in id order, after `after`. */
  page(
    filter: { userId?: string; integration?: string },
    after: string | undefined,
    take: number,
  ): Promise<TokenRow[]> {
    return this.#db.prisma.oAuthToken.findMany({
      where: {
        ...(filter.userId ? { userId: filter.userId } : {}),
        ...(filter.integration ? { integration: filter.integration } : {}),
        ...(after ? { id: { gt: after } } : {}),
      },
      orderBy: { id: "asc" },
      take,
    });
  }

  /**
   * Creates or replaces the record as a compare-and-set on the version read before sealing:
   * `undefined` when someone wrote (or created, when prev = 0) it since. `xmax = 0` is true only
   * for a freshly inserted tuple.
   */
  async upsert(tx: AuditTx, f: StoredFields, prev: number): Promise<(TokenRow & { inserted: boolean }) | undefined> {
    const rows = await tx.$queryRaw<Array<TokenRow & { inserted: boolean }>>`
      INSERT INTO oauth_tokens (id, "userId", integration, "accessToken", "refreshToken", "expiresAt", scope, "tokenType",
        "createdAt", "updatedAt", "issuedAt", "ipAddress", "userAgent", "keyVersion", "refreshStatus", version)
      VALUES (${Bun.randomUUIDv7()}::uuid, ${f.userId}, ${f.integration}, ${f.accessToken}, ${f.refreshToken},
        ${f.expiresAt}, ${f.scope}, ${f.tokenType}, ${f.at}, ${f.at}, ${f.at},
        ${f.ipAddress}, ${f.userAgent}, ${f.keyVersion}, 'ok', ${prev + 1})
      ON CONFLICT ("userId", integration) DO UPDATE SET
        "accessToken" = EXCLUDED."accessToken", "refreshToken" = EXCLUDED."refreshToken", "expiresAt" = EXCLUDED."expiresAt",
        scope = EXCLUDED.scope, "tokenType" = EXCLUDED."tokenType", "updatedAt" = EXCLUDED."updatedAt",
        "issuedAt" = EXCLUDED."issuedAt", "ipAddress" = EXCLUDED."ipAddress", "userAgent" = EXCLUDED."userAgent",
        "keyVersion" = EXCLUDED."keyVersion", "refreshStatus" = 'ok', "refreshFailures" = 0, "nextRefreshAt" = NULL,
        "refreshReason" = NULL, "forcedRefreshAt" = NULL, "integrationCtx" = NULL, version = oauth_tokens.version + 1
      WHERE oauth_tokens.version = ${prev}
      RETURNING *, (xmax = 0) AS inserted`;
    return rows[0];
  }

  async deleteByKey(tx: AuditTx, key: TokenKey): Promise<number> {
    const { count } = await tx.oAuthToken.deleteMany({ where: { userId: key.userId, integration: key.integration } });
    return count;
  }

  /**
   * The integrations whose records were removed, sorted. The rows are locked in id order first: the
   * DELETE alone locks them in its scan's order, (userId, integration) through the unique index, and
   * could deadlock with another writer that waits for row locks in id order. (The background
   * multi-row writers — re-seal, lastUsed flush, cleanup — never wait: they skip held rows.)
   */
  async deleteForUser(tx: AuditTx, userId: string): Promise<string[]> {
    await tx.$queryRaw`SELECT 1 FROM oauth_tokens WHERE "userId" = ${userId} ORDER BY id FOR UPDATE`;
    const rows = await tx.$queryRaw<
      Array<{ integration: string }>
    >`DELETE FROM oauth_tokens WHERE "userId" = ${userId} RETURNING integration`;
    return rows.map((r) => r.integration).sort();
  }

  /** The refresh write-back: a compare-and-set on the row version the caller read; bumps it. */
  async writeRefreshed(row: TokenRow, f: RefreshedFields): Promise<TokenRow | undefined> {
    const written = await this.#db.prisma.oAuthToken.updateManyAndReturn({
      where: { id: row.id, version: row.version },
      data: {
        ...f,
        refreshStatus: "ok",
        integrationCtx: null, // sealed under the canonical name (see record.ts fieldContexts)
        refreshFailures: 0,
        nextRefreshAt: null,
        refreshReason: null,
        version: { increment: 1 },
      },
    });
    return written[0];
  }

  /** A refresh failure's state (no version bump: no ciphertext changes); compare-and-set on the version. */
  async writeRefreshFailure(
    tx: AuditTx,
    row: TokenRow,
    f: { refreshStatus: string; refreshFailures: number; nextRefreshAt: Date | null; refreshReason: string },
  ): Promise<TokenRow | undefined> {
    const written = await tx.oAuthToken.updateManyAndReturn({ where: { id: row.id, version: row.version }, data: f });
    return written[0];
  }

  /** The one transition to needs-reauth; false when the row moved meanwhile (or is there already). */
  async markNeedsReauth(tx: AuditTx, row: TokenRow, reason: string): Promise<boolean> {
    const { count } = await tx.oAuthToken.updateMany({
      where: { id: row.id, version: row.version, refreshStatus: { not: "needs-reauth" } },
      data: { refreshStatus: "needs-reauth", refreshReason: reason, nextRefreshAt: null },
    });
    return count === 1;
  }

  /** The forced-refresh claim (src/tokens/forced.ts), on the database clock. */
  async claimForced(row: TokenRow, intervalSeconds: number): Promise<boolean> {
    const claimed = await this.#db.prisma.$executeRaw`
      UPDATE oauth_tokens SET "forcedRefreshAt" = now()
       WHERE id = ${row.id}::uuid
         AND ("forcedRefreshAt" IS NULL OR "forcedRefreshAt" <= now() - make_interval(secs => ${intervalSeconds}))`;
    return claimed === 1;
  }

  async releaseForced(row: TokenRow): Promise<void> {
    await this.#db.prisma.$executeRaw`UPDATE oauth_tokens SET "forcedRefreshAt" = NULL WHERE id = ${row.id}::uuid`;
  }

  /**
   * Coalesced lastUsed times, never moving one backwards (several processes flush independently).
   * The ids it could not write because another transaction holds their row: the caller keeps those
   * times for its next flush. It never waits for a row lock (SKIP LOCKED): a writer that locks
   * several token rows out of id order — an audit batch runs its changes in arrival order — would
   * otherwise deadlock with it (PostgreSQL aborts one side after a second). On the embedded owner
   * in slices of LAST_USED_SLICE ids, the event loop let in between: PGlite runs on the service's
   * thread, and 3,300 ids in one go held every request for ~0.8 s under the bench.
   */
  async flushLastUsed(times: ReadonlyMap<string, Date>): Promise<string[]> {
    const ids = [...times.keys()];
    if (this.cache && ids.length > LAST_USED_SLICE) {
      ids.sort();
      const held: string[] = [];
      for (let i = 0; i < ids.length; i += LAST_USED_SLICE) {
        const slice = ids.slice(i, i + LAST_USED_SLICE);
        if (i > 0) await yieldToEventLoop();
        held.push(...(await this.flushLastUsed(new Map(slice.map((id) => [id, times.get(id)!])))));
      }
      return held;
    }
    const written = await this.#db.prisma.$transaction(
      async (tx) => {
        const locked = (
          await tx.$queryRaw<Array<{ id: string }>>`
            SELECT id::text AS id FROM oauth_tokens WHERE id = ANY(${ids}::uuid[]) FOR UPDATE SKIP LOCKED`
        ).map((r) => r.id);
        if (locked.length > 0)
          await tx.$executeRawUnsafe(
            LAST_USED_SQL,
            locked,
            locked.map((id) => times.get(id)!.toISOString()),
          );
        return new Set(locked);
      },
      { maxWait: 10_000, timeout: 30_000 },
    );
    this.cache?.lastUsed(new Map([...times].filter(([id]) => written.has(id))));
    const missing = ids.filter((id) => !written.has(id));
    if (missing.length === 0) return [];
    // Not locked: held by another transaction, or deleted (those match nothing and are dropped).
    const rows = await this.#db.prisma.$queryRaw<Array<{ id: string }>>`
      SELECT id::text AS id FROM oauth_tokens WHERE id = ANY(${missing}::uuid[])`;
    return rows.map((r) => r.id);
  }

  /** Long-expired records (src/tokens/cleanup.ts): expired before `cutoff` and not refreshable. */
  async countExpired(cutoff: Date): Promise<number> {
    const [row] = await this.#db.prisma.$queryRawUnsafe<Array<{ n: number }>>(
      `SELECT count(*)::int AS n FROM oauth_tokens WHERE ${EXPIRED}`,
      cutoff,
    );
    return Number(row?.n ?? 0);
  }

  /**
   * Deletes up to `limit` of them, the lowest ids first; their integrations. The rows are locked
   * before the DELETE, skipping any another transaction holds (a writer is changing it; the next
   * run takes it if it is still expired): it never waits for a row lock, so it cannot deadlock with
   * a writer that locks several rows out of id order.
   */
  async deleteExpired(cutoff: Date, limit: number): Promise<string[]> {
    const rows = await this.#db.prisma.$queryRawUnsafe<Array<{ integration: string }>>(
      `WITH doomed AS (SELECT id FROM oauth_tokens WHERE ${EXPIRED} ORDER BY id LIMIT ${Math.trunc(limit)} FOR UPDATE SKIP LOCKED)
       DELETE FROM oauth_tokens t USING doomed WHERE t.id = doomed.id RETURNING t.integration`,
      cutoff,
    );
    return rows.map((r) => r.integration);
  }
}

const LAST_USED_SLICE = 256;

/**
 * PGlite's statements resolve without I/O: a chain of them runs as one macrotask, so sockets and
 * timers wait for the whole chain (a 4,000-id flush held the thread 0.8 s). Between slices and
 * pages, let them in.
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

const EXPIRED = `"expiresAt" < $1::timestamptz AND ("refreshToken" IS NULL OR "refreshStatus" = 'needs-reauth')`;
