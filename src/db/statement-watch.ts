/**
 * Every statement run on an embedded database in this process, seen before and after it runs:
 * the owner's in-process row caches (src/tokens/row-cache.ts) drop what a write may have changed.
 * Seen are PGlite's `query`, `exec` and the same two inside `transaction` (all Prisma, raw SQL and
 * the rewrap use), and each message of an owner-socket client (src/db/owner-socket.ts), whose SQL
 * is not looked into (`null`: anything may have changed).
 */
import type { PGlite, Transaction } from "@electric-sql/pglite";

export type StatementWatcher = (sql: string | null) => void;

const watchers = new WeakMap<PGlite, Set<StatementWatcher>>();

export function watchStatements(pglite: PGlite, watcher: StatementWatcher): () => void {
  let set = watchers.get(pglite);
  if (!set) {
    set = new Set();
    watchers.set(pglite, set);
    instrument(pglite, set);
  }
  set.add(watcher);
  return () => set.delete(watcher);
}

/** A statement this module cannot see by itself (an owner-socket client's message) ran or is about to. */
export function announceStatement(pglite: PGlite, sql: string | null): void {
  for (const w of watchers.get(pglite) ?? []) w(sql);
}

type Runner = Pick<PGlite | Transaction, "query" | "exec">;

function instrument(pglite: PGlite, set: Set<StatementWatcher>): void {
  const notify = (sql: string) => {
    for (const w of set) w(sql);
  };
  type Run = (sql: string, ...rest: unknown[]) => Promise<unknown>;
  const watched =
    (run: Run): Run =>
    async (sql, ...rest) => {
      notify(sql);
      try {
        return await run(sql, ...rest);
      } finally {
        notify(sql);
      }
    };
  const wrap = (target: Runner) => {
    target.query = watched(target.query.bind(target) as Run) as Runner["query"];
    target.exec = watched(target.exec.bind(target) as Run) as Runner["exec"];
  };
  wrap(pglite);
  const transaction = pglite.transaction.bind(pglite);
  pglite.transaction = (<T>(callback: (tx: Transaction) => Promise<T>) =>
    transaction((tx) => {
      wrap(tx);
      return callback(tx);
    })) as PGlite["transaction"];
}
