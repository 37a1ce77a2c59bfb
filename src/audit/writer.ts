/**
 * The group-commit audit writer: concurrent `record()` / `apply()` calls queue, and one flush at a
 * time writes everything queued in ONE transaction: first each queued state change (`apply`), each
 * in its own savepoint so a failing change fails only its caller, then one multi-row INSERT of the
 * audit rows of the changes that succeeded and of the plain events, plus the attached
 * access_requests rows. A caller's promise settles only when its batch has committed (receipt /
 * the change's result) or failed (ServiceUnavailableError for every caller of the batch; nothing of
 * it visible, neither changes nor rows).
 *
 * Rows are hash-chained per writer (src/audit/chain.ts). Every chain opens with a signed
 * checkpoint (seq 1), gets one every `checkpointEvery` event rows and, when it has unsigned rows,
 * every `checkpointSeconds`, and is closed by one at close(). On PostgreSQL the writer holds a
 * session advisory lock on its chain (a dedicated connection) for as long as it writes to it; a
 * chain whose lock is free and that is not sealed was abandoned, and `sealAbandonedChains` seals
 * it with a signed `recovery` checkpoint. Every signed checkpoint is appended to the anchor log.
 */
import pg from "pg";
import { Prisma } from "../db/generated/client.ts";
import type { Database } from "../db/database.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { ServiceUnavailableError } from "../errors.ts";
import { isDatabaseUnavailable } from "../db/unavailable.ts";
import {
  CHAIN_LOCK_CLASS,
  CHECKPOINT_TYP,
  SEALING_KINDS,
  genesisHash,
  rowHash,
  type CheckpointDetails,
  type CheckpointKind,
  type CheckpointSigner,
  type CheckpointStatement,
} from "./chain.ts";
import { assertStorableEvent } from "./event-guard.ts";
import type { AnchorEntry, AnchorSink } from "./anchors.ts";
import type { AuditedChange, AuditEvent, AuditReceipt, AuditSink, AuditTx, AuditWrite } from "./types.ts";
import type { AuditLogItem } from "./query.ts";

export const CHECKPOINT_ACTOR = "system:audit";

/** Points of a write transaction, for fault-injection tests (`onStep`). */
export type WriteStep = "begin" | "changed" | "inserted";

export interface AuditWriterOptions {
  db: Database;
  clock: Clock;
  log: Logger;
  /** Signs checkpoints (KeyService.sign in production). Without it checkpoints are written unsigned and verify reports them. */
  signer?: CheckpointSigner;
  /** Event rows between two periodic checkpoints (config AUDIT_CHECKPOINT_EVERY). */
  checkpointEvery: number;
  /** A chain with unsigned rows gets a checkpoint at most this long after its last one (config AUDIT_CHECKPOINT_SECONDS; default 10). */
  checkpointSeconds?: number;
  /** How often (real time, ms) the time-based checkpoint and the abandoned-chain sweep are looked at; 0 = never (tests call them). Default 1000. */
  tickMs?: number;
  /** Abandoned chains are looked for every this many ticks (default 60). */
  sweepEveryTicks?: number;
  /** Where signed checkpoint heads are appended (config AUDIT_ANCHOR_FILE); none when absent. */
  anchors?: AnchorSink;
  /** Id of the first chain; a new random one otherwise (and always after a failed batch). */
  chainId?: string;
  /** statement_timeout and lock_timeout of the write transaction, ms (config AUDIT_WRITE_TIMEOUT_MS). */
  writeTimeoutMs?: number;
  /** Most events per transaction (bounds the INSERT's parameter count: 13 per row). */
  maxBatch?: number;
  /**
   * Writes rows derived from the batch's event rows inside the same transaction (the webhook
   * outbox, src/webhooks/events.ts): they commit exactly when the audit rows do.
   */
  outbox?: (
    tx: Prisma.TransactionClient,
    rows: ReadonlyArray<{
      id: string;
      eventType: string;
      timestamp: number | bigint | Date;
      success: boolean;
      details: Record<string, unknown>;
    }>,
  ) => Promise<void>;
  /** Test hook: called inside the write transaction at each step (fault injection). */
  onStep?: (step: WriteStep, tx: AuditTx) => Promise<void>;
  /** Told after every batch (metrics): its events, how long the write took, whether it committed. */
  onBatch?: (b: { events: readonly AuditEvent[]; seconds: number; ok: boolean }) => void;
}

export interface AuditWriterStats {
  /** Write transactions attempted (each is one batch); compare with `events` to see group commit work. */
  batches: number;
  failedBatches: number;
  /** Event rows committed (checkpoints not included). */
  events: number;
  /** All rows committed, checkpoints included. */
  rows: number;
  checkpoints: number;
  /** Chains this writer opened. */
  chains: number;
  /** Abandoned chains this writer sealed with a recovery checkpoint. */
  recovered: number;
  /** Anchor appends that failed (the rows are committed; the anchor log misses those heads). */
  anchorFailures: number;
  chainId: string | null;
  seq: number;
  queued: number;
  /** PostgreSQL: the connection holding the chain lock was lost (the next batch starts a new chain). */
  chainLockLost: boolean;
}

export interface AuditWriter extends AuditSink {
  /** Resolves when everything recorded so far has been written (or has failed). */
  flush(): Promise<void>;
  /** Writes a periodic checkpoint if the current chain has unsigned rows older than checkpointSeconds (by the clock). */
  checkpointIfDue(): Promise<void>;
  /** Writes a periodic checkpoint now if the current chain has unsigned rows. */
  checkpointNow(): Promise<void>;
  /** Seals every chain no live writer holds and that is not sealed, with a signed recovery checkpoint; returns their ids. */
  sealAbandonedChains(): Promise<string[]>;
  /** Refuses new records, drains the queue and appends the closing checkpoint. Idempotent. */
  close(): Promise<void>;
  stats(): AuditWriterStats;
}

interface Pending {
  event?: AuditEvent;
  change?: AuditedChange<unknown>;
  timestamp: number;
  accessRequest: Prisma.AccessRequestCreateManyInput | undefined;
  resolve(r: { receipt: AuditReceipt; result: unknown }): void;
  reject(e: unknown): void;
}

interface ChainState {
  id: string;
  seq: number;
  head: string;
  /** Event rows since the last checkpoint. */
  since: number;
  /** Clock time of the last committed checkpoint. */
  signedAt: number;
}

/** A row as written: the API's item shape, with details always an object. */
type Row = Omit<AuditLogItem, "details" | "createdAt"> & { details: Record<string, unknown> };

const newId = () => Bun.randomUUIDv7();
const nullableString = (n: number | null) => (n === null ? null : String(n));

/** Chains held by live writers of this process, per database (PGlite has no other process). */
const liveInProcess = new WeakMap<Database, Set<string>>();
function liveSet(db: Database): Set<string> {
  let s = liveInProcess.get(db);
  if (!s) liveInProcess.set(db, (s = new Set()));
  return s;
}

/** Test hook for PGlite (one process): forget that a writer of this process holds `chainId`, as its process exiting would. */
export function forgetWriterForTests(db: Database, chainId: string): void {
  liveSet(db).delete(chainId);
}

/** Which of `chainIds` a live writer holds: this process's writers, and on PostgreSQL any session holding the chain lock. */
export async function liveChains(db: Database, chainIds: string[]): Promise<Set<string>> {
  // The embedded database shared with another process (the service and a script on its owner
  // socket): one PGlite backend serves both, so no lock tells whose chain is live. Then no chain
  // is called abandoned; the owner judges tails once the script has gone.
  if (db.kind === "pglite" && db.othersAttached?.()) return new Set(chainIds);
  const own = liveSet(db);
  const out = new Set(chainIds.filter((c) => own.has(c)));
  const rest = chainIds.filter((c) => !own.has(c));
  if (db.kind === "postgres" && rest.length > 0) {
    const rows = await db.prisma.$queryRaw<Array<{ chainId: string }>>`
      SELECT c AS "chainId" FROM unnest(${rest}::text[]) AS c
      WHERE EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.classid = ${CHAIN_LOCK_CLASS}::bigint::oid AND l.objid = ((hashtext(c)::bigint + 4294967296) % 4294967296)::oid)`;
    for (const r of rows) out.add(r.chainId);
  }
  return out;
}

/** The last row of every chain (a loose index scan over (chainId, seq): one probe per chain). */
export async function chainTails(
  db: Database | AuditTx,
): Promise<Array<{ chainId: string; id: string; seq: bigint; hash: string; eventType: string; kind: string | null }>> {
  const client = "prisma" in db ? db.prisma : db;
  return client.$queryRaw`
    WITH RECURSIVE c AS (
      (SELECT "chainId" FROM audit_logs ORDER BY "chainId" LIMIT 1)
      UNION ALL
      SELECT (SELECT a."chainId" FROM audit_logs a WHERE a."chainId" > c."chainId" ORDER BY a."chainId" LIMIT 1) FROM c WHERE c."chainId" IS NOT NULL
    )
    SELECT l."chainId", l.id::text AS id, l.seq, l.hash, l."eventType", l.details->>'kind' AS kind
    FROM c CROSS JOIN LATERAL (
      SELECT a."chainId", a.id, a.seq, a.hash, a."eventType", a.details FROM audit_logs a WHERE a."chainId" = c."chainId" ORDER BY a.seq DESC LIMIT 1
    ) l WHERE c."chainId" IS NOT NULL`;
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

  let firstChainId = opts.chainId;
  let chain: ChainState | null = null;
  const queue: Pending[] = [];
  let wantCheckpoint = false;
  let running = false;
  let closed = false;
  let closing: Promise<void> | null = null;
  let idleWaiters: Array<() => void> = [];
  let anchoring: Promise<void> = Promise.resolve();
  const stats = {
    batches: 0,
    failedBatches: 0,
    events: 0,
    rows: 0,
    checkpoints: 0,
    chains: 0,
    recovered: 0,
    anchorFailures: 0,
  };

  // ---- the chain lock (PostgreSQL): a session advisory lock on a dedicated connection ----------
  let lockClient: pg.Client | undefined;
  let lockLost = false;
  let heldChain: string | null = null;

  async function lockConnection(): Promise<pg.Client> {
    if (lockClient && !lockLost) return lockClient;
    const old = lockClient;
    lockClient = undefined;
    await old?.end().catch(() => {});
    const c = new pg.Client(db.pool!.options);
    c.on("error", () => {
      lockLost = true;
    });
    c.on("end", () => {
      lockLost = true;
    });
    lockLost = false;
    await withDeadline(c.connect(), deadlineMs);
    lockClient = c;
    return c;
  }

  /** Takes the lock of a new chain; false on a hash collision with another live chain (pick another id). */
  async function lockChain(id: string): Promise<boolean> {
    if (db.kind !== "postgres") return true;
    const c = await lockConnection();
    const r = await withDeadline(
      c.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS ok", [CHAIN_LOCK_CLASS, id]),
      deadlineMs,
    );
    return r.rows[0]?.ok === true;
  }

  let sweepSoon = false;
  function releaseChain(id: string): void {
    live.delete(id);
    // An abandoned chain (failed batch, lost lock) has an unsigned tail that verification reports
    // until it is sealed: sweep at the next tick rather than the next periodic sweep. A chain that
    // was closed normally ends on its sealing checkpoint, which the sweep skips. (A sweep racing a
    // batch still in flight on that chain cannot fork it: (chainId, seq) is unique.)
    sweepSoon = true;
    if (heldChain === id) heldChain = null;
    if (db.kind !== "postgres" || !lockClient || lockLost) return;
    lockClient.query("SELECT pg_advisory_unlock($1::int, hashtext($2))", [CHAIN_LOCK_CLASS, id]).catch(() => {});
  }

  // ---- batches -------------------------------------------------------------------------------

  function kick() {
    if (running) return;
    running = true;
    // Deferred to the next turn of the event loop (after pending I/O), so that requests which are
    // already readable reach their record() call and share the first batch. A microtask was not
    // enough on PGlite, where every query resolves without leaving the process.
    setImmediate(async () => {
      try {
        while (queue.length > 0 || wantCheckpoint) await writeBatch(queue.splice(0, maxBatch), false);
      } finally {
        running = false;
        const waiters = idleWaiters;
        idleWaiters = [];
        for (const w of waiters) w();
      }
    });
  }

  /** Resolves once the queue is written and the anchors of what was written are appended. */
  function flush(): Promise<void> {
    const idle =
      !running && queue.length === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve));
    return idle.then(() => anchoring);
  }

  async function sign(statement: CheckpointStatement): Promise<CheckpointDetails> {
    return signer ? { ...statement, signature: await signer(statement, CHECKPOINT_TYP) } : statement;
  }

  async function checkpointRow(c: ChainState, kind: CheckpointKind): Promise<Row> {
    const details = await sign({ chainId: c.id, seq: c.seq, headHash: c.head, kind });
    return appendRow(c, checkpointEvent(c.id, details), clock.now());
  }

  /** Builds the batch's rows on a copy of the chain state; the state advances only if the batch commits. */
  async function buildRows(
    events: Array<{ event: AuditEvent; timestamp: number }>,
    base: ChainState | null,
    newChainId: string | null,
    close: boolean,
    timed: boolean,
  ): Promise<{ c: ChainState | null; rows: Row[]; eventRows: Row[] }> {
    const rows: Row[] = [];
    const eventRows: Row[] = [];
    let c: ChainState;
    if (base) {
      c = { ...base };
    } else {
      c = { id: newChainId!, seq: 0, head: genesisHash(newChainId!), since: 0, signedAt: clock.now() };
      rows.push(await checkpointRow(c, "open"));
    }
    for (const e of events) {
      const row = appendRow(c, e.event, e.timestamp);
      rows.push(row);
      eventRows.push(row);
      c.since += 1;
      if (c.since >= opts.checkpointEvery) {
        rows.push(await checkpointRow(c, "periodic"));
        c.since = 0;
      }
    }
    if (close) rows.push(await checkpointRow(c, "close"));
    else if (timed && c.since > 0) {
      rows.push(await checkpointRow(c, "periodic"));
      c.since = 0;
    }
    if (rows.length > eventRows.length) c.signedAt = clock.now();
    return { c, rows, eventRows };
  }

  async function writeBatch(batch: Pending[], close: boolean): Promise<void> {
    const timed = wantCheckpoint;
    wantCheckpoint = false;
    if (batch.length === 0 && !close && !(timed && chain && chain.since > 0)) return;
    const opened = chain === null;
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
      if (chain && lockLost) {
        // Our hold on the chain is gone (connection dropped): another process may seal it, so
        // continuing it could fork it. Start a new one.
        log.warn("audit chain lock connection lost; starting a new chain", { chainId: chain.id });
        releaseChain(chain.id);
        chain = null;
      }
      if (chain === null) {
        if (close) return; // nothing to close
        for (let attempt = 0; ; attempt++) {
          newChainId = (attempt === 0 ? firstChainId : undefined) ?? newId();
          if (await lockChain(newChainId)) break;
          if (attempt > 5) throw new Error("could not take an audit chain lock");
        }
        firstChainId = undefined;
        live.add(newChainId);
        heldChain = newChainId;
      }
      const base = chain;
      const hasChanges = batch.some((p) => p.change);
      // Without changes, rows are built (hashing, signing) before the transaction, keeping it short.
      let built: { c: ChainState | null; rows: Row[]; eventRows: Row[] } | undefined = hasChanges
        ? undefined
        : await buildRows(
            batch.map((p) => ({ event: p.event!, timestamp: p.timestamp })),
            base,
            newChainId,
            close,
            timed,
          );
      const outcomes: Array<{ ok: true; event: AuditEvent; result: unknown } | { ok: false; err: unknown }> = [];
      // A pooled connection that died while idle fails the first statement; nothing has been done
      // then, so the batch is retried (up to 3 times) on another connection. Any later failure is final.
      for (let attempt = 0; ; attempt++) {
        let started = false;
        try {
          await withDeadline(
            db.prisma.$transaction(
              async (tx) => {
                // Fail fast instead of queueing behind a lock: every caller of this batch is waiting.
                await tx.$queryRaw`SELECT set_config('statement_timeout', ${String(writeTimeoutMs)}, true), set_config('lock_timeout', ${String(writeTimeoutMs)}, true)`;
                started = true;
                await opts.onStep?.("begin", tx);
                if (hasChanges) {
                  outcomes.length = 0;
                  for (const p of batch) {
                    if (!p.change) {
                      outcomes.push({ ok: true, event: p.event!, result: undefined });
                      continue;
                    }
                    // A change alone in its batch needs no savepoint: if it fails, the whole transaction
                    // (holding nothing else) rolls back. Two round trips fewer for a lone write.
                    const alone = batch.length === 1;
                    if (!alone) await tx.$executeRawUnsafe("SAVEPOINT chronokms_audit_entry");
                    try {
                      const result = await p.change.change(tx);
                      const event = p.change.event(result);
                      assertStorableEvent(event);
                      if (!alone) await tx.$executeRawUnsafe("RELEASE SAVEPOINT chronokms_audit_entry");
                      outcomes.push({ ok: true, event, result });
                    } catch (err) {
                      // The database itself failing is the batch failing (every caller gets 503).
                      if (isDatabaseUnavailable(err)) throw err;
                      if (alone) throw new LoneChangeFailed(err);
                      await tx.$executeRawUnsafe("ROLLBACK TO SAVEPOINT chronokms_audit_entry");
                      outcomes.push({ ok: false, err });
                    }
                  }
                  const events: Array<{ event: AuditEvent; timestamp: number }> = [];
                  outcomes.forEach((o, i) => {
                    if (o.ok) events.push({ event: o.event, timestamp: batch[i]!.timestamp });
                  });
                  // Every change failed and nothing else is due: write nothing (no chain is opened for it).
                  if (events.length === 0 && !close && !(timed && base && base.since > 0))
                    built = { c: base, rows: [], eventRows: [] };
                  else built = await buildRows(events, base, newChainId, close, timed);
                }
                await opts.onStep?.("changed", tx);
                const okBatch = hasChanges ? batch.filter((_, i) => outcomes[i]!.ok) : batch;
                const accessRequests = okBatch.flatMap((p) => (p.accessRequest ? [p.accessRequest] : []));
                if (built!.rows.length > 0) await tx.$executeRaw(insertSql(built!.rows));
                if (accessRequests.length > 0) await tx.$executeRaw(accessRequestsSql(accessRequests));
                if (opts.outbox && built!.eventRows.length > 0) await opts.outbox(tx, built!.eventRows);
                await opts.onStep?.("inserted", tx);
              },
              { maxWait: writeTimeoutMs, timeout: writeTimeoutMs * 2 },
            ),
            deadlineMs,
          );
          break;
        } catch (err) {
          if (started || attempt >= 3 || !isDatabaseUnavailable(err)) throw err;
          log.warn("audit batch could not start (dead connection?); retrying", { attempt, err });
        }
      }
      const { c, rows, eventRows } = built!;
      chain = c;
      if (c === null && newChainId) releaseChain(newChainId);
      if (opened && c) stats.chains += 1;
      stats.events += eventRows.length;
      stats.rows += rows.length;
      stats.checkpoints += rows.length - eventRows.length;
      told(true, hasChanges ? outcomes.flatMap((o) => (o.ok ? [o.event] : [])) : undefined);
      let k = 0;
      batch.forEach((p, i) => {
        const o = hasChanges ? outcomes[i]! : undefined;
        if (o && !o.ok) return p.reject(o.err);
        const row = eventRows[k++]!;
        p.resolve({
          receipt: { id: row.id, chainId: row.chainId, seq: BigInt(row.seq) },
          result: o?.ok ? o.result : undefined,
        });
      });
      anchor(rows);
      if (close && c) releaseChain(c.id);
    } catch (err) {
      if (err instanceof LoneChangeFailed) {
        // Rolled back before anything was written: the chain is as it was; only this caller fails, with its own error.
        if (newChainId && chain === null) releaseChain(newChainId);
        if (timed) wantCheckpoint = true;
        batch[0]!.reject(err.error);
        return;
      }
      // We cannot tell whether the transaction committed (the connection may have died during
      // COMMIT, or the deadline may fire while it is still in flight). Continuing from either the
      // old or the new head could fork the chain, so the next batch starts a fresh chain instead;
      // the abandoned one is released, so a sweep (this process's or another's) seals it.
      const abandoned = chain?.id ?? newChainId;
      chain = null;
      if (abandoned) releaseChain(abandoned);
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

  // ---- anchors -------------------------------------------------------------------------------

  function anchor(rows: Row[]): void {
    if (!opts.anchors) return;
    const entries = rows
      .filter((r) => r.eventType === "AUDIT_CHECKPOINT")
      .flatMap((r) => {
        const e = anchorEntryOf(r);
        return e ? [e] : [];
      });
    if (entries.length === 0) return;
    const sink = opts.anchors;
    anchoring = anchoring.then(() =>
      sink.append(entries).catch((err) => {
        stats.anchorFailures += 1;
        log.error("could not append to the audit anchor log", { err, entries: entries.length });
      }),
    );
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
  function sealAbandonedChains(): Promise<string[]> {
    return (sweeping ??= sweep().finally(() => {
      sweeping = undefined;
    }));
  }

  async function sweep(): Promise<string[]> {
    // See liveChains: while another process shares the embedded database, its live chain would
    // look abandoned here (and its lock would be ours). Sealed later, by the owner, once it is alone.
    if (db.kind === "pglite" && db.othersAttached?.()) return [];
    const tails = (await chainTails(db)).filter(
      (t) =>
        !(t.eventType === "AUDIT_CHECKPOINT" && t.kind !== null && SEALING_KINDS.has(t.kind)) && !live.has(t.chainId),
    );
    const sealed: string[] = [];
    for (const t of tails) {
      try {
        const row = await db.prisma.$transaction(
          async (tx) => {
            await tx.$queryRaw`SELECT set_config('statement_timeout', ${String(writeTimeoutMs)}, true), set_config('lock_timeout', ${String(writeTimeoutMs)}, true)`;
            // A live writer (another process) holds its chain's session lock: then it is not ours to seal.
            const [lock] = await tx.$queryRaw<
              Array<{ ok: boolean }>
            >`SELECT pg_try_advisory_xact_lock(${CHAIN_LOCK_CLASS}::int, hashtext(${t.chainId})) AS ok`;
            if (!lock?.ok || live.has(t.chainId)) return null;
            const [last] = await tx.$queryRaw<
              Array<{ id: string; seq: bigint; hash: string; eventType: string; kind: string | null }>
            >`
              SELECT id::text AS id, seq, hash, "eventType", details->>'kind' AS kind FROM audit_logs WHERE "chainId" = ${t.chainId} ORDER BY seq DESC LIMIT 1`;
            if (!last || (last.eventType === "AUDIT_CHECKPOINT" && last.kind !== null && SEALING_KINDS.has(last.kind)))
              return null;
            const c: ChainState = { id: t.chainId, seq: Number(last.seq), head: last.hash, since: 0, signedAt: 0 };
            const details = await sign({
              chainId: c.id,
              seq: c.seq,
              headHash: c.head,
              kind: "recovery",
              lastRowId: last.id,
            });
            const r = appendRow(c, checkpointEvent(c.id, details), clock.now());
            await tx.$executeRaw(insertSql([r]));
            return r;
          },
          { maxWait: writeTimeoutMs, timeout: writeTimeoutMs * 2 },
        );
        if (row) {
          sealed.push(t.chainId);
          stats.recovered += 1;
          anchor([row]);
          log.warn("sealed an abandoned audit chain with a recovery checkpoint", {
            chainId: t.chainId,
            lastSeq: row.seq - 1,
          });
        }
      } catch (err) {
        log.error("could not seal an abandoned audit chain; will retry", { chainId: t.chainId, err });
      }
    }
    return sealed;
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
            void sealAbandonedChains().catch(() => {
              sweepSoon = true;
            });
          }
        }, tickMs)
      : undefined;
  timer?.unref?.();

  return {
    record(input: AuditWrite | AuditEvent): Promise<AuditReceipt> {
      if (closed) return Promise.reject(new ServiceUnavailableError("audit log is closed"));
      const write: AuditWrite = "event" in input ? input : { event: input };
      try {
        assertStorableEvent(write.event);
      } catch (err) {
        return Promise.reject(err);
      }
      return new Promise<AuditReceipt>((resolve, reject) => {
        queue.push({
          event: write.event,
          accessRequest: write.accessRequest,
          timestamp: clock.now(),
          resolve: (r) => resolve(r.receipt),
          reject,
        });
        kick();
      });
    },
    apply<T>(c: AuditedChange<T>): Promise<T> {
      if (closed) return Promise.reject(new ServiceUnavailableError("audit log is closed"));
      return new Promise<T>((resolve, reject) => {
        queue.push({
          change: c as AuditedChange<unknown>,
          accessRequest: undefined,
          timestamp: clock.now(),
          resolve: (r) => resolve(r.result as T),
          reject,
        });
        kick();
      });
    },
    flush,
    checkpointIfDue,
    checkpointNow,
    sealAbandonedChains,
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
        await anchoring;
        await opts.anchors?.close().catch(() => {});
        const c = lockClient;
        lockClient = undefined;
        await c?.end().catch(() => {});
        if (heldChain) live.delete(heldChain);
      })();
      return closing;
    },
    stats: () => ({
      ...stats,
      chainId: chain?.id ?? null,
      seq: chain?.seq ?? 0,
      queued: queue.length,
      chainLockLost: lockClient !== undefined && lockLost,
    }),
  };
}

/** The only change of a batch failed on its own (not the database): its transaction rolled back whole. */
class LoneChangeFailed extends Error {
  constructor(readonly error: unknown) {
    super("the batch's only change failed");
  }
}

function checkpointEvent(chainId: string, details: CheckpointDetails): AuditEvent {
  return {
    eventType: "AUDIT_CHECKPOINT",
    actor: CHECKPOINT_ACTOR,
    target: `chain:${chainId}`,
    startTime: null,
    endTime: null,
    success: true,
    details: details as unknown as Record<string, unknown>,
  };
}

function appendRow(c: { seq: number; head: string; id: string }, e: AuditEvent, timestamp: number): Row {
  c.seq += 1;
  const row: Row = {
    id: newId(),
    chainId: c.id,
    seq: c.seq,
    timestamp,
    eventType: e.eventType,
    actor: e.actor,
    target: e.target ?? null,
    startTime: e.startTime ?? null,
    endTime: e.endTime ?? null,
    success: e.success,
    details: e.details ?? {},
    prevHash: c.head,
    hash: "",
  };
  row.hash = rowHash(c.head, {
    ...row,
    seq: String(row.seq),
    timestamp: String(row.timestamp),
    startTime: nullableString(row.startTime),
    endTime: nullableString(row.endTime),
  });
  c.head = row.hash;
  return row;
}

/** The anchor entry of a signed checkpoint row (none for an unsigned one). */
export function anchorEntryOf(r: { chainId: string; seq: number; hash: string; details: unknown }): AnchorEntry | null {
  const d = r.details as CheckpointDetails;
  if (typeof d?.signature !== "string") return null;
  const { signature, ...statement } = d;
  return { v: 1, chainId: r.chainId, seq: r.seq, hash: r.hash, statement, signature, at: new Date().toISOString() };
}

function insertSql(rows: Row[]): Prisma.Sql {
  const values = rows.map(
    (r) =>
      Prisma.sql`(${r.id}::uuid, ${String(r.seq)}::bigint, ${r.chainId}, ${String(r.timestamp)}::bigint, ${r.eventType}, ${r.actor}, ${r.target}, ${nullableString(r.startTime)}::bigint, ${nullableString(r.endTime)}::bigint, ${r.success}, ${canonicalJson(r.details)}::jsonb, ${r.prevHash}, ${r.hash})`,
  );
  return Prisma.sql`INSERT INTO "audit_logs" ("id", "seq", "chainId", "timestamp", "eventType", "actor", "target", "startTime", "endTime", "success", "details", "prevHash", "hash") VALUES ${Prisma.join(values)}`;
}

/**
 * The batch's access_requests rows as one multi-row INSERT (like insertSql): Prisma's createMany
 * costs ~4× the CPU per row on this path (measured by bench/), and the audit batch is on every
 * decision's critical path.
 */
function accessRequestsSql(rows: Prisma.AccessRequestCreateManyInput[]): Prisma.Sql {
  const ts = (d: Date | string) => (d instanceof Date ? d : new Date(d)).toISOString();
  const values = rows.map((r) => {
    const policyIds = Array.isArray(r.policyIds) ? r.policyIds : (r.policyIds?.set ?? []);
    return Prisma.sql`(${r.id ?? Bun.randomUUIDv7()}::uuid, ${r.requesterId}::text, ${r.resourceType}::text, ${JSON.stringify(r.resource)}::jsonb, ${ts(r.startTime)}::timestamptz, ${ts(r.endTime)}::timestamptz, ${r.purpose ?? null}::text, ${r.granted}::boolean, ${r.denialReason ?? null}::text, ${JSON.stringify(policyIds)}::jsonb, ${r.policyId ?? null}::text, ${r.keyCount ?? null}::int)`;
  });
  // policyIds travel as one JSON array and become text[] in SQL, so no driver-specific array binding is involved.
  return Prisma.sql`INSERT INTO "access_requests" ("id", "requesterId", "resourceType", "resource", "startTime", "endTime", "purpose", "granted", "denialReason", "policyIds", "policyId", "keyCount")
    SELECT v.id, v.rq, v.rt, v.res, v.st, v.et, v.pu, v.gr, v.dr, ARRAY(SELECT jsonb_array_elements_text(v.pids)), v.pid, v.kc
    FROM (VALUES ${Prisma.join(values)}) AS v(id, rq, rt, res, st, et, pu, gr, dr, pids, pid, kc)`;
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`audit write did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
