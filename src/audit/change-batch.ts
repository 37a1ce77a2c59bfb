/**
 * A batch holding state changes (`apply`): the changes need a transaction to run in, so it is a
 * Prisma interactive transaction: the changes, then the batch's one statement (src/audit/batch-statement.ts)
 * for the audit rows of the changes that succeeded and of the batch's plain events.
 *
 * Savepoints (SAVEPOINT and RELEASE: two round trips per change) are used only when a change has
 * to fail alone. A batch's only change runs without one: if it fails, the transaction rolls back
 * whole, its caller gets its error and the writer queues the batch's other entries again. Several
 * changes first run without savepoints too (the common case: all succeed, and the statements are
 * exactly those a savepoint run would commit); if one fails, the transaction rolls back whole and
 * the writer queues the whole batch again, marked `careful`, to run with a savepoint per change,
 * where each change's outcome is decided as before. A transaction the database aborted to break a
 * deadlock runs again as it was. So a change may be invoked more than once, and only the effects
 * of its last invocation commit (src/audit/types.ts, AuditedChange).
 */
import type { Prisma } from "../db/generated/client.ts";
import type { Database } from "../db/database.ts";
import type { Logger } from "../log.ts";
import { isDatabaseUnavailable, isTransactionConflict } from "../db/unavailable.ts";
import { batchStatement, type AuditOutbox } from "./batch-statement.ts";
import { assertStorableEvent } from "./event-guard.ts";
import { buildBatchRows, type BatchRows, type BuildOptions, type ChainState } from "./rows.ts";
import type { AuditedChange, AuditEvent } from "./types.ts";
import { withDeadline, type StepConnection, type StepHook } from "./writer-connection.ts";

/** One queued entry: a plain event (`record`) or a change (`apply`). */
export interface PendingEntry {
  event?: AuditEvent;
  change?: AuditedChange<unknown>;
  timestamp: number;
  accessRequest: Prisma.AccessRequestCreateManyInput | undefined;
  /** Set after a run without savepoints failed: this entry's next batch gives each change a savepoint. */
  careful?: boolean;
}

export type Outcome = { ok: true; event: AuditEvent; result: unknown } | { ok: false; err: unknown };

/**
 * A change run without a savepoint failed on its own (not the database): the transaction rolled
 * back whole. `lone`: it was the batch's only change, so `error` is its outcome; otherwise the
 * batch must run again with savepoints.
 */
export class ChangeFailed extends Error {
  constructor(
    readonly index: number,
    readonly error: unknown,
    readonly lone: boolean,
  ) {
    super("a change of the batch failed without a savepoint");
  }
}

export interface ChangeBatch {
  db: Database;
  batch: readonly PendingEntry[];
  base: ChainState | null;
  newChainId: string | null;
  close: boolean;
  timed: boolean;
  build: BuildOptions;
  outbox: AuditOutbox | undefined;
  onStep: StepHook | undefined;
  writeTimeoutMs: number;
  deadlineMs: number;
  log: Logger;
}

export async function runChangeBatch(o: ChangeBatch): Promise<{ built: BatchRows; outcomes: Outcome[] }> {
  const { batch, base } = o;
  const changes = batch.filter((p) => p.change).length;
  const savepoints = changes > 1 && batch.some((p) => p.careful);
  let built: BatchRows | undefined;
  const outcomes: Outcome[] = [];
  // A pooled connection that died while idle fails the first statement; nothing has been done
  // then, so the batch is retried (up to 3 times) on another connection. A transaction PostgreSQL
  // aborted to break a deadlock (a token write of this batch and another transaction locking the
  // same rows in the other order) committed nothing either: it runs again, up to 3 times, each
  // change invoked afresh. Any other failure once started is final.
  const began = performance.now();
  let deadlineMs = o.deadlineMs;
  for (let attempt = 0, conflicts = 0; ; attempt++) {
    let started = false;
    try {
      await attemptOnce(() => (started = true), deadlineMs);
      break;
    } catch (err) {
      // Runs again within what is left of the batch's deadline, not a fresh one.
      const left = o.deadlineMs - (performance.now() - began);
      if (started && isTransactionConflict(err) && conflicts < 3 && left > 0) {
        deadlineMs = left;
        conflicts++;
        o.log.warn("audit batch aborted by the database to break a deadlock; running it again", { conflicts, err });
        continue;
      }
      if (started || attempt >= 3 || !isDatabaseUnavailable(err)) throw err;
      o.log.warn("audit batch could not start (dead connection?); retrying", { attempt, err });
    }
  }
  return { built: built!, outcomes };

  function attemptOnce(onStarted: () => void, deadlineMs: number): Promise<void> {
    outcomes.length = 0;
    return withDeadline(
      o.db.prisma.$transaction(
        async (tx) => {
          // Fail fast instead of queueing behind a lock: every caller of this batch is waiting. Not
          // on PGlite: its one session runs one statement at a time (nothing waits on a lock) and
          // its timers cannot interrupt a running statement, so there it would only cost a statement.
          if (o.db.kind === "postgres")
            await tx.$queryRaw`SELECT set_config('statement_timeout', ${String(o.writeTimeoutMs)}, true), set_config('lock_timeout', ${String(o.writeTimeoutMs)}, true)`;
          onStarted();
          const conn: StepConnection = {
            backendPid: async () =>
              (await tx.$queryRaw<Array<{ pid: number }>>`SELECT pg_backend_pid() AS pid`)[0]!.pid,
          };
          await o.onStep?.("begin", conn);
          for (const [i, p] of batch.entries()) {
            if (!p.change) {
              outcomes.push({ ok: true, event: p.event!, result: undefined });
              continue;
            }
            if (savepoints) await tx.$executeRawUnsafe("SAVEPOINT chronokms_audit_entry");
            try {
              const result = await p.change.change(tx);
              const event = p.change.event(result);
              assertStorableEvent(event);
              if (savepoints) await tx.$executeRawUnsafe("RELEASE SAVEPOINT chronokms_audit_entry");
              outcomes.push({ ok: true, event, result });
            } catch (err) {
              // The database itself failing is the batch failing (every caller gets 503).
              if (isDatabaseUnavailable(err)) throw err;
              if (!savepoints) throw new ChangeFailed(i, err, changes === 1);
              await tx.$executeRawUnsafe("ROLLBACK TO SAVEPOINT chronokms_audit_entry");
              outcomes.push({ ok: false, err });
            }
          }
          const events = outcomes.flatMap((r, i) => (r.ok ? [{ event: r.event, timestamp: batch[i]!.timestamp }] : []));
          // Every change failed and nothing else is due: write nothing (no chain is opened for it).
          if (events.length === 0 && !o.close && !(o.timed && base && base.since > 0))
            built = { c: base, rows: [], eventRows: [] };
          else built = await buildBatchRows(o.build, events, base, o.newChainId, o.close, o.timed);
          await o.onStep?.("changed", conn);
          const accessRequests = batch.flatMap((p, i) => (outcomes[i]!.ok && p.accessRequest ? [p.accessRequest] : []));
          if (built.rows.length > 0) {
            const s = batchStatement(built.rows, accessRequests, o.outbox);
            await tx.$executeRawUnsafe(s.text, ...s.values);
          }
          await o.onStep?.("inserted", conn);
        },
        { maxWait: o.writeTimeoutMs, timeout: o.writeTimeoutMs * 2 },
      ),
      deadlineMs,
    );
  }
}
