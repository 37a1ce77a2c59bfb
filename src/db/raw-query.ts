/**
 * Hot statements off Prisma's query runtime: a named prepared statement on the `pg` pool
 * (PostgreSQL), and in the embedded owner one too, sent to PGlite in one pass
 * (src/db/pglite-prepared.ts; PGlite's own `query` when a value is not a string). Prisma's per-statement work (query
 * building, its adapter's row mapping) costs more than the statement itself on a read that is
 * one indexed SELECT; the rest of the code stays on Prisma.
 *
 * Rows come back with the drivers' default parsing (timestamptz → Date, int4 → number, uuid and
 * text → string), which is what Prisma hands out for the same columns; select int8/numeric
 * columns through Prisma instead.
 */
import type { Database } from "./database.ts";
import { pglitePrepared } from "./pglite-prepared.ts";

export async function rawQuery<R>(db: Database, name: string, text: string, values: unknown[]): Promise<R[]> {
  if (db.pglite && !db.pool) {
    if (values.every(isText)) return pglitePrepared<R>(db.pglite, name, text, values);
    return (await db.pglite.query<R>(text, values)).rows;
  }
  if (!db.pool) throw new Error(`rawQuery: ${db.description} has neither a pool nor an embedded database`);
  // Through the embedded owner's socket every client shares one backend session, where a named
  // statement of another script would clash: unnamed there.
  if (db.owner) return (await db.pool.query({ text, values })).rows as R[];
  const epoch = planEpoch;
  try {
    return (await db.pool.query({ name: `${name}_${epoch}`, text, values })).rows as R[];
  } catch (err) {
    if (!isStalePlan(err)) throw err;
    // A migration (from another process) changed a selected column's type: every connection's
    // statement of that name now fails. New names are prepared afresh on each connection.
    if (planEpoch === epoch) planEpoch++;
    return (await db.pool.query({ name: `${name}_${planEpoch}`, text, values })).rows as R[];
  }
}

let planEpoch = 0;

function isText(v: unknown): v is string | null {
  return typeof v === "string" || v === null;
}

function isStalePlan(err: unknown): boolean {
  const e = err as { code?: unknown; routine?: unknown };
  return e?.code === "0A000" && e.routine === "RevalidateCachedQuery";
}

/**
 * A point read on the request path (API-key lookup, token row): like `rawQuery`, but on
 * PostgreSQL through Bun's native client when the database has one (src/db/native-reader.ts).
 * That client sends a string parameter for a json/jsonb slot as a JSON string rather than
 * letting the server parse it, hence SELECTs with text and number parameters only; anything
 * else goes through `rawQuery`.
 */
export async function rawSelect<R>(
  db: Database,
  name: string,
  text: string,
  values: ReadonlyArray<string | number | null>,
): Promise<R[]> {
  return (await db.reader?.select<R>(text, values)) ?? rawQuery<R>(db, name, text, [...values]);
}
