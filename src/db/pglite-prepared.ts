/**
 * A hot statement on the embedded database as a named prepared statement, sent in one pass.
 * PGlite's `query` parses and plans the text on every call and enters its WASM Postgres six times
 * (Parse, Describe, Bind, Describe, Execute, Sync, each with its own buffers and awaits); here a
 * name is parsed and planned once per session and every run is one buffer (Bind, Describe,
 * Execute, Sync) handed over in one call. Measured on this machine, an indexed SELECT by key:
 * ~1,100 µs through `query`, ~330 µs this way.
 *
 * What `query` does around a statement is kept: the same two mutexes (so nothing lands inside a
 * transaction or an owner-socket client's extended query), the file-system sync after it, the
 * same row parsing (PGlite's parsers), and the statement is announced to the statement watchers
 * (src/db/statement-watch.ts) before and after it runs, since it does not pass through `query`.
 *
 * The session is shared with owner-socket clients (src/db/owner-socket.ts), which could drop or
 * redefine a statement of that name: after any of their messages, and any SQL of this process
 * naming PREPARE, DEALLOCATE or DISCARD, every name is parsed afresh (Close, then Parse; closing
 * a missing statement is not an error). A statement a migration made
 * stale (0A000) or one that vanished (26000) is parsed afresh once; nothing ran in either case.
 * Values travel as text, so only strings and nulls are accepted (the caller falls back otherwise).
 */
import { type PGlite, parse, protocol } from "@electric-sql/pglite";
import { announceStatement, watchStatements } from "./statement-watch.ts";

const { serialize } = protocol;

/** In-process SQL that may drop or redefine a prepared statement (over-matching costs one re-parse). */
const SESSION_STATEMENTS = /\b(?:prepare|deallocate|discard)\b/i;

/** Per open database: the names this process has parsed in its session, and their text. */
const sessions = new WeakMap<PGlite, Map<string, string>>();

function session(pglite: PGlite): Map<string, string> {
  let names = sessions.get(pglite);
  if (!names) {
    const created = new Map<string, string>();
    watchStatements(pglite, (sql) => {
      if (sql === null || SESSION_STATEMENTS.test(sql)) created.clear();
    });
    sessions.set(pglite, created);
    names = created;
  }
  return names;
}

export async function pglitePrepared<R>(
  pglite: PGlite,
  name: string,
  text: string,
  values: readonly (string | null)[],
): Promise<R[]> {
  if (pglite.closed) return (await pglite.query<R>(text, [...values])).rows; // its own clear error
  const names = session(pglite);
  announceStatement(pglite, text);
  try {
    return await pglite._runExclusiveTransaction(() =>
      pglite._runExclusiveQuery(async () => {
        const known = names.get(name) === text;
        try {
          return await runOnce<R>(pglite, name, text, values, !known, names);
        } catch (err) {
          names.delete(name);
          if (!known || !isStale(err)) throw err;
          return await runOnce<R>(pglite, name, text, values, true, names);
        }
      }),
    );
  } finally {
    announceStatement(pglite, text);
  }
}

async function runOnce<R>(
  pglite: PGlite,
  name: string,
  text: string,
  values: readonly (string | null)[],
  prepare: boolean,
  names: Map<string, string>,
): Promise<R[]> {
  const parts: Uint8Array[] = [];
  if (prepare) parts.push(serialize.close({ type: "S", name }), serialize.parse({ name, text }));
  parts.push(
    serialize.bind({ statement: name, values: [...values] }),
    serialize.describe({ type: "P" }),
    serialize.execute({}),
    serialize.sync(),
  );
  const { messages } = await pglite.execProtocol(concat(parts));
  if (prepare) names.set(name, text);
  return (parse.parseResults(messages, pglite.parsers)[0]?.rows ?? []) as R[];
}

function isStale(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === "0A000" || code === "26000";
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
