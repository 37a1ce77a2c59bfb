/**
 * The audit writer's own way to the database, outside Prisma's query runtime (the batch statement
 * is on every decision's critical path). This module is the contract; open-writer-connection.ts
 * picks the connection:
 *
 * - PostgreSQL: one dedicated connection, on Bun's native client where it provably reaches the
 *   server `pg` would (native-writer-connection.ts), else on `pg` (pg-writer-connection.ts). It
 *   holds the session advisory lock of the writer's chain (src/audit/chain.ts) and runs every batch
 *   statement, as a prepared statement in autocommit. statement_timeout and lock_timeout are set
 *   once, for the session, when it connects. If it is lost, so is the chain lock: the writer then
 *   starts a new chain on a new connection.
 * - PGlite in this process: a named prepared statement sent in one pass (src/db/pglite-prepared.ts,
 *   under the same mutexes as PGlite's own query: it never lands inside another transaction). Its
 *   one session is shared by every caller, so no session setting is changed there.
 * - PGlite through its owner's socket (maintenance scripts): the database's pool, unnamed statements
 *   (the owner's single backend is shared with other processes).
 *
 * `runStepped` runs the same statement inside BEGIN … COMMIT with the test hook between the steps
 * (fault injection); in production the statement runs alone, where nothing happens between "begun"
 * and "committed" to fault.
 */
import type { BatchStatement } from "./batch-statement.ts";

/** Points of a write transaction, for fault-injection tests (`onStep`). */
export type WriteStep = "begin" | "changed" | "inserted";

/** What the fault-injection hook may do with the connection a batch is written on. */
export interface StepConnection {
  /** The server process of that connection (pg_backend_pid()), e.g. to terminate it. */
  backendPid(): Promise<number>;
}

export type StepHook = (step: WriteStep, conn: StepConnection) => Promise<void>;

/** The statement was never sent: the connection was already known to be gone. Safe to retry elsewhere. */
export class NotSentError extends Error {
  constructor() {
    super("the audit writer's connection is gone; the batch was not sent");
  }
}

export interface WriterConnection {
  /** True once the connection holding the chain lock is gone (PostgreSQL): the chain must not be continued. */
  readonly lost: boolean;
  /** Whether the connection was ever opened (for stats). */
  readonly opened: boolean;
  /** Takes the lock of a new chain; false on a hash collision with another live chain. */
  lockChain(id: string): Promise<boolean>;
  /** Releases a chain's lock (best effort: a lost connection released it already). */
  unlockChain(id: string): void;
  run(s: BatchStatement, deadlineMs: number): Promise<void>;
  runStepped(s: BatchStatement, deadlineMs: number, onStep: StepHook): Promise<void>;
  /** Drops the connection (e.g. after a deadline: its state is unknown); the next use opens a new one. */
  discard(): void;
  close(): Promise<void>;
}

export class DeadlineError extends Error {}

export function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(`audit write did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
