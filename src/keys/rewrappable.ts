/**
 * A Rewrappable built from a table description: a table whose columns hold token envelopes
 * (`KeyService.sealToken`) describes its id, row-version (compare-and-set) and key-version columns,
 * its encrypted fields and the ctx each field is sealed under; this module writes the SQL (pending
 * rows, counts per version, the compare-and-set write) and the batch loop. A new encrypted table
 * is one `EncryptedTable` object (src/tokens/rewrap.ts is the OAuth token table's).
 *
 * Per batch: one keyset SELECT of the next window of rows in id order, walking the primary key
 * from the cursor (the next one is already running while this batch is sealed), then
 * per chunk one re-seal call and one UPDATE … FROM unnest(…) guarded by the row version, which
 * never waits for a row lock: rows another transaction holds are skipped, so it cannot deadlock
 * with a writer that locks several rows in any order. A row changed or held concurrently keeps its
 * value (a later pass picks it up); a row that does not open is skipped, audited DECRYPT_FAILED and
 * reported, so one damaged row never stalls the run.
 */
import type { AuditSink } from "../audit/types.ts";
import {
  TOKEN_ENVELOPE_PREFIX,
  isTokenEnvelope,
  readEnvelopeHeader,
  readTokenEnvelopeHeader,
} from "../crypto/index.ts";
import { pgArrayLiteral } from "../db/array-literal.ts";
import type { Database } from "../db/database.ts";
import type { FailedRecord, Rewrappable, SqlClient } from "./rewrap.ts";
import type { KeyService, TokenResealRequest } from "./types.ts";

/** One encrypted column; `name` is what failures and audit events call it (e.g. `access`). */
export interface EncryptedField {
  name: string;
  column: string;
  nullable?: boolean;
}

/** A stored row as the description sees it: the selected columns by name, the id as text. */
export type StoredRow = Record<string, unknown>;

export interface EncryptedTable<R extends StoredRow = StoredRow> {
  /** Stable store name shown in counts, progress and retirement refusals. */
  name: string;
  table: string;
  /** Primary key column (uuid); keyset order of the batches. */
  id: string;
  /** Incremented by every write that re-seals; the compare-and-set of the write-back. */
  rowVersion: string;
  /** The master key version the row's envelopes are sealed under. */
  keyVersion: string;
  fields: readonly EncryptedField[];
  /** Further columns `contexts`, `newContext` and `label` read. */
  columns: readonly string[];
  /** The ctx the field's stored envelope must carry (and its v1 ctx where the table held v1 envelopes). */
  contexts(row: R, field: string): { ctx: string; legacyCtx?: string };
  /** The ctx of the field's new envelope once the row has row version `next`. */
  newContext(row: R, field: string, next: number): string;
  /** Human name of a row for reports and audit targets (never a value). */
  label(row: R): string;
  /** Rows to re-seal whatever their key version (SQL condition), e.g. a spelling kept for old ciphertexts. */
  pendingWhen?: string;
  /** SET clauses every re-seal adds, e.g. clearing that spelling. */
  onReseal?: string;
}

/** The master key version a stored value's header names (v2 `tok:<v>` or v1 envelope); DecryptionFailedError if malformed. */
export function envelopeKeyVersion(jwe: string): number {
  return isTokenEnvelope(jwe) ? readTokenEnvelopeHeader(jwe).version : readEnvelopeHeader(jwe).version;
}

const REWRAP_ACTOR = "system:rewrap";
/** The batch SELECT's column saying whether a row of the window is pending (its other columns are NULL if not). */
const PENDING = "__pending";
/** Rows per re-seal call and write-back statement. */
const WRITE_CHUNK = 250;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function q(name: string): string {
  if (!IDENT.test(name)) throw new Error(`not a plain SQL identifier: ${name}`);
  return `"${name}"`;
}

interface Sql {
  /** The table with its key version's envelope prefix joined (`kp.p`). */
  from: string;
  /** That join alone, for a query over a subset of the table that keeps its column names. */
  joinPrefix: string;
  select: string;
  /** The columns `select` lists after the id. */
  columns: string[];
  /**
   * The id column itself, qualified. `select` outputs it as text under the same name, and an
   * unqualified ORDER BY names the output column: the text, which no index orders.
   */
  idColumn: string;
  legacy: string;
  consistent: string;
  pending: string;
}

function buildSql(t: EncryptedTable<never>): Sql {
  const kv = q(t.keyVersion);
  const cols = [...new Set([t.rowVersion, t.keyVersion, ...t.fields.map((f) => f.column), ...t.columns])];
  if (cols.includes(PENDING) || t.id === PENDING) throw new Error(`${t.table}: a column may not be named ${PENDING}`);
  const select = [`${q(t.id)}::text AS ${q(t.id)}`, ...cols.filter((c) => c !== t.id).map(q)].join(", ");
  const each = (test: (c: string) => string, join: string) =>
    t.fields
      .map((f) => (f.nullable ? `(${q(f.column)} IS NULL OR ${test(q(f.column))})` : test(q(f.column))))
      .join(join);
  // Still in the v1 format (any v2 envelope begins with the prefix; LIKE needs no escaping for it).
  const legacy = `(${t.fields.map((f) => `(${q(f.column)} IS NOT NULL AND ${q(f.column)} NOT LIKE '${TOKEN_ENVELOPE_PREFIX}%')`).join(" OR ")})`;
  // The envelopes name the row's key version: every v2 value begins with the base64url of
  // `{"alg":"dir","enc":"A256GCM","kid":"tok:<keyVersion>","salt":"` (the sealer writes the header
  // members in this order; whole base64 groups only). A row failing this (a forged key version, or
  // a v1 value) is pending whatever its column says, and is counted under the versions its
  // envelopes name too, so retirement cannot be fooled by the column. The prefix is computed once
  // per master key version (joined as `kp`; OFFSET 0 keeps the planner from inlining it, which
  // would compute it per row again), not per row; a key version no master key has fails the test.
  const header = `('{"alg":"dir","enc":"A256GCM","kid":"tok:' || "version"::text || '","salt":"')`;
  const prefix = `left(translate(encode(convert_to(${header}, 'UTF8'), 'base64'), E'+/=\\n', '-_'), (octet_length(${header}) / 3) * 4)`;
  const joinPrefix = `LEFT JOIN (SELECT "version" AS "kp_version", ${prefix} AS "kp_prefix" FROM "master_keys" OFFSET 0) kp ON kp."kp_version" = ${kv}`;
  const from = `${q(t.table)} ${joinPrefix}`;
  const consistent = `coalesce(${each((c) => `left(${c}, length(kp."kp_prefix")) = kp."kp_prefix"`, " AND ")}, false)`;
  const pending = `(${kv} <> $1::int OR ${legacy} OR NOT ${consistent}${t.pendingWhen ? ` OR (${t.pendingWhen})` : ""})`;
  return { from, joinPrefix, select, columns: cols, idColumn: `${q(t.table)}.${q(t.id)}`, legacy, consistent, pending };
}

/**
 * The batch SELECT ($1 target version, $2 batch size, $3 keyset cursor or NULL): the next $2 rows
 * after the cursor in id order, read on the primary key, each with `__pending`; only pending rows
 * carry their other columns.
 */
export function pendingBatchSql(t: EncryptedTable<never>): string {
  const sql = buildSql(t);
  const id = q(t.id);
  const cols = sql.columns.filter((c) => c !== t.id).map((c) => `CASE WHEN p.pending THEN w.${q(c)} END AS ${q(c)}`);
  return `SELECT w.${id}::text AS ${id}, p.pending AS ${q(PENDING)}, ${cols.join(", ")}
    FROM (SELECT * FROM ${q(t.table)} WHERE ($3::uuid IS NULL OR ${id} > $3::uuid) ORDER BY ${id} LIMIT $2::int) w
    ${sql.joinPrefix}
    CROSS JOIN LATERAL (SELECT ${sql.pending} AS pending) p
    ORDER BY w.${id}`;
}

/**
 * The write-back of one chunk: $1 ids, $2 the row versions read, $3 the new key versions, then one
 * text array per field, all aligned.
 */
export function resealWriteSql(t: EncryptedTable<never>): string {
  const [id, rv, kv] = [q(t.id), q(t.rowVersion), q(t.keyVersion)];
  const names = t.fields.map((_, i) => `f${i}`);
  const set = t.fields.map((f, i) => `${q(f.column)} = l.${names[i]}`);
  // The rows locked (those still at the version read, not held elsewhere) carry their new values,
  // so the UPDATE joins them alone, by id.
  return `WITH v AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], ${names.map((_, i) => `$${i + 4}::text[]`).join(", ")}) AS v(id, old, kv, ${names.join(", ")})),
            locked AS (SELECT t.${id} AS id, v.kv, ${names.map((n) => `v.${n}`).join(", ")} FROM ${q(t.table)} t JOIN v ON t.${id} = v.id AND t.${rv} = v.old FOR UPDATE OF t SKIP LOCKED)
       UPDATE ${q(t.table)} AS t
          SET ${[...set, `${kv} = l.kv`, `${rv} = t.${rv} + 1`, ...(t.onReseal ? [t.onReseal] : [])].join(", ")}
         FROM locked l
        WHERE t.${id} = l.id`;
}

interface Resealed {
  id: string;
  old: number;
  values: Array<string | null>;
  keyVersion: number;
}

type Failed = FailedRecord & { row: StoredRow };

/** The Rewrappable of one described table. */
export function rewrappable<R extends StoredRow>(
  db: Database,
  table: EncryptedTable<R>,
  audit?: AuditSink,
): Rewrappable {
  const t = table as unknown as EncryptedTable<StoredRow>;
  const prisma = db.prisma;
  const sql = buildSql(t);
  const from = sql.from;
  const odd = `NOT ${sql.consistent} AND NOT ${sql.legacy}`;
  const selectPending = pendingBatchSql(t);
  const writeBack = resealWriteSql(t);
  let prefetched: { key: string; at: number; rows: Promise<StoredRow[]> } | undefined;

  const fetch = (targetVersion: number, limit: number, after: string | null) => {
    const key = `${targetVersion}:${limit}:${after}`;
    // Only the continuation of the batch just done (a run that stopped leaves one behind).
    const hit = prefetched?.key === key && performance.now() - prefetched.at < 5000 ? prefetched.rows : undefined;
    prefetched = undefined;
    return hit ?? select(db, selectPending, [targetVersion, limit, after]);
  };

  return {
    name: t.name,

    async countByVersion() {
      // One scan: per key version, the rows whose envelopes name it (or still v1) and the field
      // values, aligned by row, of those whose envelopes name another (only ever a tampered row):
      // counted under every version involved, so none of them can be retired while the row needs it.
      // (OFFSET 0 computes `ok` once per row rather than once per aggregate.)
      const fields = t.fields.map((f, i) => `${q(f.column)} AS f${i}`).join(", ");
      const tampered = t.fields.map((_, i) => `array_agg(f${i}) FILTER (WHERE NOT ok) AS f${i}`).join(", ");
      const rows = await select(
        db,
        `SELECT v, (count(*) FILTER (WHERE ok))::int AS n, ${tampered}
           FROM (SELECT ${q(t.keyVersion)} AS v, (${sql.consistent} OR ${sql.legacy}) AS ok, ${fields} FROM ${from} OFFSET 0) s
          GROUP BY v`,
        [],
      );
      const counts = new Map<number, number>();
      for (const r of rows) if (Number(r.n) > 0) counts.set(Number(r.v), Number(r.n));
      for (const r of rows) {
        const values = t.fields.map((_, i) => (r[`f${i}`] ?? []) as Array<string | null>);
        for (let k = 0; k < (values[0]?.length ?? 0); k++) {
          const versions = new Set([Number(r.v)]);
          for (const column of values) {
            const jwe = column[k];
            if (typeof jwe !== "string") continue;
            try {
              versions.add(envelopeKeyVersion(jwe));
            } catch {
              // malformed: it opens under no version; the key version column still counts it
            }
          }
          for (const v of versions) counts.set(v, (counts.get(v) ?? 0) + 1);
        }
      }
      return counts;
    },

    async countLegacy(client: SqlClient = prisma) {
      const rows = await client.$queryRawUnsafe<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM ${from} WHERE ${sql.legacy}`,
      );
      return Number(rows[0]?.n ?? 0);
    },

    async listByVersion(version: number, limit: number) {
      const rows = await prisma.$queryRawUnsafe<StoredRow[]>(
        `SELECT ${sql.select} FROM ${from} WHERE ${q(t.keyVersion)} = $1::int OR (${odd}) ORDER BY ${sql.idColumn} LIMIT $2::int`,
        version,
        limit,
      );
      return rows.map((r) => ({ id: String(r[t.id]), label: t.label(r) }));
    },

    async rewrapBatch(keys: KeyService, { targetVersion, limit, after, skip }) {
      // The window: the next `limit` rows after the cursor, pending or not (only the pending ones
      // carry their columns).
      const window = await fetch(targetVersion, limit, after ?? null);
      const next = window.length === limit ? String(window.at(-1)![t.id]) : null;
      // The next window's SELECT runs while this one is sealed and written (the windows are disjoint).
      if (next !== null) {
        const key = `${targetVersion}:${limit}:${next}`;
        const p = select(db, selectPending, [targetVersion, limit, next]);
        p.catch(() => {});
        prefetched = { key, at: performance.now(), rows: p };
      }
      const todo = window.filter((r) => r[PENDING] === true && !skip?.has(String(r[t.id])));
      if (todo.length === 0) return { moved: 0, failed: [], next };
      const parts: StoredRow[][] = [];
      for (let i = 0; i < todo.length; i += WRITE_CHUNK) parts.push(todo.slice(i, i + WRITE_CHUNK));
      let moved = 0;
      const failed: Failed[] = [];
      // One chunk is re-sealed while the database writes the one before (each re-seal call still
      // spreads over the worker threads where there are any).
      const writes: Array<Promise<number>> = [];
      for (const chunk of parts) {
        const { sealed, failed: bad } = await resealChunk(keys, t, chunk);
        failed.push(...bad);
        const w = write(sealed);
        w.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
        writes.push(w);
      }
      for (const n of await Promise.all(writes)) moved += n;
      for (const f of failed) await auditFailure(f);
      const skipped = todo.length - failed.length - moved;
      return { moved, failed: failed.map(({ id, label, field }) => ({ id, label, field })), next, skipped };
    },
  };

  async function auditFailure(f: Failed) {
    if (!audit) return;
    await audit.record({
      eventType: "DECRYPT_FAILED",
      actor: REWRAP_ACTOR,
      target: f.label,
      success: false,
      details: {
        field: f.field ?? null,
        keyVersion: Number(f.row[t.keyVersion]),
        rowVersion: Number(f.row[t.rowVersion]),
        during: "rewrap",
      },
    });
  }

  /**
   * One statement per chunk. The row-version guard is the compare-and-set: a row a writer changed
   * since our SELECT is left alone (its new value is already sealed by that writer). The new
   * ciphertexts name old + 1, the row version this statement gives the row. The CTE locks the rows
   * before any is updated and skips those another transaction holds (SKIP LOCKED): the statement
   * never waits, so no writer can deadlock with it, whatever order that writer locks rows in (an
   * audit batch's changes lock theirs in arrival order). A skipped row stays pending for a later pass.
   */
  async function write(sealed: Resealed[]): Promise<number> {
    if (sealed.length === 0) return 0;
    return execute(db, writeBack, [
      sealed.map((r) => r.id),
      sealed.map((r) => r.old),
      sealed.map((r) => r.keyVersion),
      ...t.fields.map((_, i) => sealed.map((r) => r.values[i] ?? null)),
    ]);
  }
}

/**
 * The batch SELECT and UPDATE bypass Prisma's query runtime (as src/db/raw-query.ts does for the
 * read path): its parameter and row mapping cost more than the statements on 1,000-row batches.
 * Unnamed statements: a prepared one would go to a generic plan after five runs, and the keyset
 * condition (`$3 IS NULL OR id > $3`) only uses the index in a plan made for the value.
 */
async function select(db: Database, text: string, values: unknown[]): Promise<StoredRow[]> {
  if (db.pglite && !db.pool) return (await db.pglite.query<StoredRow>(text, values)).rows;
  if (!db.pool) throw new Error(`rewrap: ${db.description} has neither a pool nor an embedded database`);
  return (await db.pool.query({ text, values })).rows as StoredRow[];
}

async function execute(db: Database, text: string, values: Array<Array<string | number | null>>): Promise<number> {
  if (db.pglite && !db.pool) return (await db.pglite.query(text, values)).affectedRows ?? 0;
  if (!db.pool) throw new Error(`rewrap: ${db.description} has neither a pool nor an embedded database`);
  return (await db.pool.query({ text, values: values.map(pgArrayLiteral) })).rowCount ?? 0;
}

/** Every field of every row in one `resealTokens` call, so they all land on one version. */
async function resealChunk(
  keys: KeyService,
  t: EncryptedTable<StoredRow>,
  all: StoredRow[],
): Promise<{ sealed: Resealed[]; failed: Failed[] }> {
  const items: TokenResealRequest[] = [];
  const failed: Failed[] = [];
  const rows: Array<{ row: StoredRow; at: Array<number | null> }> = [];
  for (const row of all) {
    const next = Number(row[t.rowVersion]) + 1;
    const reqs: TokenResealRequest[] = [];
    const at: Array<number | null> = [];
    let field = t.fields[0]?.name;
    try {
      for (const f of t.fields) {
        field = f.name;
        const jwe = row[f.column];
        if (jwe === null && f.nullable) {
          at.push(null);
          continue;
        }
        if (typeof jwe !== "string") throw new Error(`${f.column} is not a string`);
        at.push(items.length + reqs.length);
        reqs.push({ jwe, ...t.contexts(row, f.name), newCtx: t.newContext(row, f.name, next) });
      }
    } catch {
      // A row whose bookkeeping is bad (e.g. a row version no ctx can name) does not open: failed, skipped.
      failed.push({ id: String(row[t.id]), label: t.label(row), field, row });
      continue;
    }
    rows.push({ row, at });
    items.push(...reqs);
  }
  if (rows.length === 0) return { sealed: [], failed };
  const { version, jwes } = await keys.resealTokens(items);
  const sealed: Resealed[] = [];
  for (const { row, at } of rows) {
    const values = at.map((k) => (k === null ? null : (jwes[k] ?? null)));
    const bad = at.findIndex((k, i) => k !== null && values[i] === null);
    if (bad >= 0) {
      failed.push({ id: String(row[t.id]), label: t.label(row), field: t.fields[bad]!.name, row });
      continue;
    }
    sealed.push({ id: String(row[t.id]), old: Number(row[t.rowVersion]), values, keyVersion: version });
  }
  return { sealed, failed };
}
