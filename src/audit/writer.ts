/**
 * The group-commit audit writer: concurrent `record()` / `apply()` calls queue, and one flush at a
 * time writes everything queued as one batch. A batch of plain events (every access decision) is
 * ONE statement in autocommit (src/audit/batch-statement.ts: audit rows, attached access_requests
 * rows and webhook outbox rows together) on the writer's own connection (src/audit/writer-connection.ts).
 * A batch holding state changes (`apply`) runs them in one transaction first (src/audit/change-batch.ts).
 * A caller's promise settles only when its batch has committed (receipt / the change's result) or
 * failed (ServiceUnavailableError for every caller of the batch; nothing of it visible).
 *
 * Rows are hash-chained per writer (src/audit/chain.ts, src/audit/rows.ts). Every chain opens with
 * a signed checkpoint (seq 1), gets one every `checkpointEvery` event rows and, when it has
 * unsigned rows, every `checkpointSeconds`, and is closed by one at close(). On PostgreSQL the
 * writer's connection holds a session advisory lock on its chain for as long as it writes to it;
 * a chain whose lock is free and that is not sealed was abandoned, and `sealAbandonedChains`
 * (src/audit/seal.ts) seals it with a signed `recovery` checkpoint. Every signed checkpoint is
 * appended to the anchor log.
 */
import { ServiceUnavailableError } from "../errors.ts";
import { assertStorableWrite } from "./event-guard.ts";
import { AnchorQueue } from "./anchors.ts";
import type { AuditedChange, AuditEvent, AuditReceipt, AuditWrite } from "./types.ts";
import { batchStatement } from "./batch-statement.ts";
import { ChangeFailed, runChangeBatch, type Outcome, type PendingEntry } from "./change-batch.ts";
import { liveSet } from "./chains.ts";
import { buildBatchRows, type BatchRows, type BuildOptions, type ChainState } from "./rows.ts";
import { sealAbandonedChains } from "./seal.ts";
import { writerConnection } from "./open-writer-connection.ts";
import { NotSentError, type StepConnection, type WriteStep } from "./writer-connection.ts";
import type { AuditWriter, AuditWriterOptions } from "./writer-api.ts";
// Where callers have always found them.
export { forgetWriterForTests, liveChains } from "./chains.ts";
export type { StepConnection, WriteStep };
export type { AuditWriter, AuditWriterOptions, AuditWriterStats } from "./writer-api.ts";

interface Pending extends PendingEntry {
  resolve(r: { receipt: AuditReceipt; result: unknown }): void;
  reject(e: unknown): void;
}

export function createAuditWriter(opts: AuditWriterOptions): AuditWriter {
  const { db, clock, log, signer } = opts;
  if (!Number.isSafeInteger(opts.checkpointEvery) || opts.checkpointEvery < 1)
    throw new RangeError("checkpointEvery must be a positive integer");
  const checkpointMs = (opts.checkpointSeconds ?? 10) * 1000;
  if (!(checkpointMs > 0)) throw new RangeError("checkpointSeconds must be positive");
  const writeTimeoutMs = opts.writeTimeoutMs ?? 2_000;
  const maxBatch = opts.maxBatch ?? 500;
  // The client-side backstop: a dead TCP peer never answers, and statement_timeout runs on the server.
  const deadlineMs = writeTimeoutMs * 2 + 1_000;
  if (!signer) log.warn("audit checkpoints will be UNSIGNED: no signer configured (verify will report them)");
  const live = liveSet(db);
  const conn = writerConnection(db, writeTimeoutMs);
  const build: BuildOptions = { signer, now: () => clock.now(), checkpointEvery: opts.checkpointEvery };

  let firstChainId = opts.chainId;
  let chain: ChainState | null = null;
  let heldChain: string | null = null;
  const queue: Pending[] = [];
  let wantCheckpoint = false;
  let running = false;
  let closed = false;
  let closing: Promise<void> | null = null;
  let idleWaiters: Array<() => void> = [];
  const anchors = new AnchorQueue(opts.anchors, log);
  const stats = { batches: 0, failedBatches: 0, events: 0, rows: 0, checkpoints: 0, chains: 0, recovered: 0 };

  let sweepSoon = false;
  function releaseChain(id: string): void {
    live.delete(id);
    // An abandoned chain (failed batch, lost lock) has an unsigned tail that verification reports
    // until it is sealed: sweep at the next tick rather than the next periodic sweep. A chain that
    // was closed normally ends on its sealing checkpoint, which the sweep skips. (A sweep racing a
    // batch still in flight on that chain cannot fork it: (chainId, seq) is unique.)
    sweepSoon = true;
    if (heldChain === id) heldChain = null;
    conn.unlockChain(id);
  }

  // ---- group commit ----------------------------------------------------------------------------
  // An idle writer flushes a lone call at once (a microtask: calls made in the same synchronous
  // run still share it), so a decision at one connection waits for no event-loop turn. Calls that
  // arrive while a batch is in flight queue and form the next batch. On PGlite a whole request,
  // queries included, can run inside one I/O callback without yielding, so nothing is ever "in
  // flight" when the next request's call arrives; a call that arrives in the same event-loop turn
  // as a finished batch is therefore taken as concurrency and waits for the end of that turn
  // (setImmediate), where the requests read in the same turn join it.
  let busyTurn = false;
  const endTurn = () => {
    busyTurn = false;
  };

  function kick() {
    if (running) return;
    running = true;
    if (busyTurn) setImmediate(drain);
    else queueMicrotask(drain);
  }

  async function drain() {
    try {
      while (queue.length > 0 || wantCheckpoint) await writeBatch(queue.splice(0, maxBatch), false);
    } finally {
      running = false;
      if (!busyTurn) {
        busyTurn = true;
        setImmediate(endTurn);
      }
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves once the queue is written and the anchors of what was written are appended. */
  function flush(): Promise<void> {
    const idle =
      !running && queue.length === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve));
    return idle.then(() => anchors.idle());
  }

  /** Opens a new chain and takes its lock; returns its id. */
  async function openChain(): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const id = (attempt === 0 ? firstChainId : undefined) ?? Bun.randomUUIDv7();
      if (await conn.lockChain(id)) {
        firstChainId = undefined;
        live.add(id);
        heldChain = id;
        return id;
      }
      if (attempt > 5) throw new Error("could not take an audit chain lock");
    }
  }

  async function writeBatch(batch: Pending[], close: boolean): Promise<void> {
    const timed = wantCheckpoint;
    wantCheckpoint = false;
    if (batch.length === 0 && !close && !(timed && chain && chain.since > 0)) return;
    stats.batches += 1;
    let newChainId: string | null = null;
    const batchStarted = performance.now();
    const told = (ok: boolean, events: readonly AuditEvent[] = batch.flatMap((p) => (p.event ? [p.event] : []))) => {
      try {
        opts.onBatch?.({ events, seconds: (performance.now() - batchStarted) / 1000, ok });
      } catch (err) {
        log.error("audit onBatch hook failed", { err });
      }
    };
    try {
      let built: BatchRows;
      let outcomes: Outcome[] | undefined;
      for (let attempt = 0; ; attempt++) {
        if (chain && conn.lost) {
          // Our hold on the chain is gone (connection dropped): another process may seal it, so
          // continuing it could fork it. Start a new one.
          log.warn("audit chain lock connection lost; starting a new chain", { chainId: chain.id });
          releaseChain(chain.id);
          chain = null;
        }
        if (chain === null && newChainId === null) {
          if (close) return; // nothing to close
          newChainId = await openChain();
        }
        try {
          if (batch.some((p) => p.change)) {
            ({ built, outcomes } = await runChangeBatch({
              ...{ db, batch, base: chain, newChainId, close, timed, build, outbox: opts.outbox },
              ...{ onStep: opts.onStep, writeTimeoutMs, deadlineMs, log },
            }));
          } else {
            const events = batch.map((p) => ({ event: p.event!, timestamp: p.timestamp }));
            built = await buildBatchRows(build, events, chain, newChainId, close, timed);
            const accessRequests = batch.flatMap((p) => (p.accessRequest ? [p.accessRequest] : []));
            const s = batchStatement(built.rows, accessRequests, opts.outbox);
            await (opts.onStep ? conn.runStepped(s, deadlineMs, opts.onStep) : conn.run(s, deadlineMs));
          }
          break;
        } catch (err) {
          // The connection was known to be gone before anything was sent: the batch goes to a new chain on a new one.
          if (!(err instanceof NotSentError) || attempt >= 3) throw err;
          if (chain) releaseChain(chain.id);
          if (newChainId) releaseChain(newChainId);
          chain = null;
          newChainId = null;
        }
      }
      const { c, rows, eventRows } = built;
      const opened = chain === null && c !== null;
      chain = c;
      if (c === null && newChainId) releaseChain(newChainId); // nothing written: no chain was opened for it
      if (opened) stats.chains += 1;
      stats.events += eventRows.length;
      stats.rows += rows.length;
      stats.checkpoints += rows.length - eventRows.length;
      told(true, outcomes ? outcomes.flatMap((o) => (o.ok ? [o.event] : [])) : undefined);
      let k = 0;
      for (const [i, p] of batch.entries()) {
        const o = outcomes?.[i];
        if (o && !o.ok) {
          p.reject(o.err);
          continue;
        }
        const row = eventRows[k++]!;
        p.resolve({
          receipt: { id: row.id, chainId: row.chainId, seq: BigInt(row.seq) },
          result: o?.ok ? o.result : undefined,
        });
      }
      anchors.add(rows);
      if (close && c) releaseChain(c.id);
    } catch (err) {
      if (err instanceof ChangeFailed) {
        // Rolled back before anything was written: the chain is as it was. A batch's only change
        // fails alone, with its own error, and the other entries go back to the head of the queue;
        // otherwise the whole batch goes back, to run with a savepoint per change (change-batch.ts).
        if (newChainId && chain === null) releaseChain(newChainId);
        if (timed) wantCheckpoint = true;
        if (err.lone) batch[err.index]!.reject(err.error);
        else for (const p of batch) p.careful = true;
        queue.unshift(...batch.filter((_, i) => !err.lone || i !== err.index));
        return;
      }
      // We cannot tell whether the write committed (the connection may have died during it, or the
      // deadline may fire while it is in flight). Continuing from either head could fork the chain:
      // the next batch starts a fresh chain, and a sweep seals the abandoned one. The connection
      // goes too (pg may reject the query before it reports the connection itself gone).
      const abandoned = chain?.id ?? newChainId;
      chain = null;
      if (abandoned) releaseChain(abandoned);
      conn.discard();
      stats.failedBatches += 1;
      told(false);
      log.error("audit batch failed; callers get 503 and the next batch opens a new chain", {
        events: batch.length,
        close,
        err,
      });
      const failure = new ServiceUnavailableError("audit log unavailable", err);
      for (const p of batch) p.reject(failure);
      if (close) throw failure;
    }
  }

  // ---- time-based checkpoints and abandoned chains --------------------------------------------
  function checkpointNow(): Promise<void> {
    if (closed || !chain || chain.since === 0) return flush();
    wantCheckpoint = true;
    kick();
    return flush();
  }

  function checkpointIfDue(): Promise<void> {
    if (!chain || chain.since === 0 || clock.now() - chain.signedAt < checkpointMs) return Promise.resolve();
    return checkpointNow();
  }

  let sweeping: Promise<string[]> | undefined;
  function sealAbandoned(): Promise<string[]> {
    sweeping ??= sealAbandonedChains({ db, clock, log, signer, writeTimeoutMs, live })
      .then((rows) => {
        stats.recovered += rows.length;
        anchors.add(rows);
        return rows.map((r) => r.chainId);
      })
      .finally(() => {
        sweeping = undefined;
      });
    return sweeping;
  }

  const tickMs = opts.tickMs ?? 1000;
  const sweepEvery = opts.sweepEveryTicks ?? 60;
  let ticks = 0;
  const timer =
    tickMs > 0
      ? setInterval(() => {
          ticks += 1;
          void checkpointIfDue().catch(() => {});
          if (signer && (sweepSoon || ticks % sweepEvery === 0)) {
            sweepSoon = false;
            void sealAbandoned().catch(() => {
              sweepSoon = true;
            });
          }
        }, tickMs)
      : undefined;
  timer?.unref?.();

  function enqueue(p: Omit<Pending, "timestamp">): void {
    queue.push({ ...p, timestamp: clock.now() });
    kick();
  }

  return {
    record(input: AuditWrite | AuditEvent): Promise<AuditReceipt> {
      if (closed) return Promise.reject(new ServiceUnavailableError("audit log is closed"));
      const write: AuditWrite = "event" in input ? input : { event: input };
      try {
        assertStorableWrite(write);
      } catch (err) {
        return Promise.reject(err);
      }
      return new Promise<AuditReceipt>((resolve, reject) =>
        enqueue({ event: write.event, accessRequest: write.accessRequest, resolve: (r) => resolve(r.receipt), reject }),
      );
    },
    apply<T>(c: AuditedChange<T>): Promise<T> {
      if (closed) return Promise.reject(new ServiceUnavailableError("audit log is closed"));
      return new Promise<T>((resolve, reject) =>
        enqueue({
          change: c as AuditedChange<unknown>,
          accessRequest: undefined,
          resolve: (r) => resolve(r.result as T),
          reject,
        }),
      );
    },
    flush,
    checkpointIfDue,
    checkpointNow,
    sealAbandonedChains: sealAbandoned,
    close() {
      closing ??= (async () => {
        closed = true;
        if (timer) clearInterval(timer);
        await flush();
        await sweeping?.catch(() => {});
        if (chain !== null) {
          try {
            await writeBatch([], true);
          } catch {
            // already logged; shutdown goes on without the closing checkpoint
          }
        }
        await anchors.close();
        await conn.close();
        if (heldChain) live.delete(heldChain);
      })();
      return closing;
    },
    stats: () => ({
      ...stats,
      anchorFailures: anchors.failures,
      chainId: chain?.id ?? null,
      seq: chain?.seq ?? 0,
      queued: queue.length,
      chainLockLost: conn.opened && conn.lost,
    }),
  };
}
