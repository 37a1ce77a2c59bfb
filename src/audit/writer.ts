/**
 * The group-commit audit writer: concurrent `record()` calls queue, and one flush at a time writes
 * everything queued in ONE transaction (one multi-row INSERT into audit_logs plus one INSERT of
 * the attached access_requests rows). A caller's promise settles only when its batch has committed
 * (receipt) or failed (ServiceUnavailableError for every caller of the batch; nothing of it visible).
 *
 * Rows are hash-chained per writer (src/audit/chain.ts). Every chain opens with a signed
 * checkpoint (seq 1), gets one every `checkpointEvery` event rows, and is closed by one at close().
 */
import { Prisma } from "../db/generated/client.ts";
import type { Database } from "../db/database.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../log.ts";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { ServiceUnavailableError } from "../errors.ts";
import { CHECKPOINT_TYP, genesisHash, rowHash, type CheckpointDetails, type CheckpointKind, type CheckpointSigner } from "./chain.ts";
import { assertStorableEvent } from "./event-guard.ts";
import type { AuditEvent, AuditReceipt, AuditSink, AuditWrite } from "./types.ts";
import type { AuditLogItem } from "./query.ts";

export const CHECKPOINT_ACTOR = "system:audit";

export interface AuditWriterOptions {
  db: Database;
  clock: Clock;
  log: Logger;
  /** Signs checkpoints (KeyService.sign in production). Without it checkpoints are written unsigned and verify reports them. */
  signer?: CheckpointSigner;
  /** Event rows between two periodic checkpoints (config AUDIT_CHECKPOINT_EVERY). */
  checkpointEvery: number;
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
  outbox?: (tx: Prisma.TransactionClient, rows: ReadonlyArray<{ id: string; eventType: string; timestamp: number | bigint | Date; success: boolean; details: Record<string, unknown> }>) => Promise<void>;
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
  chainId: string | null;
  seq: number;
  queued: number;
}

export interface AuditWriter extends AuditSink {
  /** Resolves when everything recorded so far has been written (or has failed). */
  flush(): Promise<void>;
  /** Refuses new records, drains the queue and appends the closing checkpoint. Idempotent. */
  close(): Promise<void>;
  stats(): AuditWriterStats;
}

interface Pending {
  event: AuditEvent;
  timestamp: number;
  accessRequest: Prisma.AccessRequestCreateManyInput | undefined;
  resolve(r: AuditReceipt): void;
  reject(e: unknown): void;
}

interface ChainState {
  id: string;
  seq: number;
  head: string;
  /** Event rows since the last checkpoint. */
  since: number;
}

/** A row as written: the API's item shape, with details always an object. */
type Row = Omit<AuditLogItem, "details" | "createdAt"> & { details: Record<string, unknown> };

const newId = () => Bun.randomUUIDv7();
const nullableString = (n: number | null) => (n === null ? null : String(n));

export function createAuditWriter(opts: AuditWriterOptions): AuditWriter {
  const { db, clock, log, signer } = opts;
  if (!Number.isSafeInteger(opts.checkpointEvery) || opts.checkpointEvery < 1) throw new RangeError("checkpointEvery must be a positive integer");
  const writeTimeoutMs = opts.writeTimeoutMs ?? 2_000;
  const maxBatch = opts.maxBatch ?? 500;
  // The client-side backstop: a dead TCP peer never answers, and statement_timeout runs on the server.
  const deadlineMs = writeTimeoutMs * 2 + 1_000;
  if (!signer) log.warn("audit checkpoints will be UNSIGNED: no signer configured (verify will report them)");

  let firstChainId = opts.chainId;
  let chain: ChainState | null = null;
  const queue: Pending[] = [];
  let running = false;
  let closed = false;
  let closing: Promise<void> | null = null;
  let idleWaiters: Array<() => void> = [];
  const stats = { batches: 0, failedBatches: 0, events: 0, rows: 0, checkpoints: 0, chains: 0 };

  function kick() {
    if (running) return;
    running = true;
    // Deferred to the next turn of the event loop (after pending I/O), so that requests which are
    // already readable reach their record() call and share the first batch. A microtask was not
    // enough on PGlite, where every query resolves without leaving the process.
    setImmediate(async () => {
      try {
        while (queue.length > 0) await writeBatch(queue.splice(0, maxBatch), false);
      } finally {
        running = false;
        const waiters = idleWaiters;
        idleWaiters = [];
        for (const w of waiters) w();
      }
    });
  }

  function flush(): Promise<void> {
    if (!running && queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => idleWaiters.push(resolve));
  }

  async function checkpointRow(c: ChainState, kind: CheckpointKind): Promise<Row> {
    const statement = { chainId: c.id, seq: c.seq, headHash: c.head, kind };
    const details: CheckpointDetails = signer ? { ...statement, signature: await signer(statement, CHECKPOINT_TYP) } : statement;
    return appendRow(c, {
      eventType: "AUDIT_CHECKPOINT",
      actor: CHECKPOINT_ACTOR,
      target: `chain:${c.id}`,
      startTime: null,
      endTime: null,
      success: true,
      details: details as unknown as Record<string, unknown>,
    }, clock.now());
  }

  function appendRow(c: ChainState, e: AuditEvent, timestamp: number): Row {
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

  /** Builds the batch's rows on a copy of the chain state; the state advances only if the batch commits. */
  async function buildRows(batch: Pending[], close: boolean): Promise<{ c: ChainState; rows: Row[]; eventRows: Row[] }> {
    const rows: Row[] = [];
    const eventRows: Row[] = [];
    let c: ChainState;
    if (chain) {
      c = { ...chain };
    } else {
      const id = firstChainId ?? newId();
      firstChainId = undefined;
      c = { id, seq: 0, head: genesisHash(id), since: 0 };
      rows.push(await checkpointRow(c, "open"));
    }
    for (const p of batch) {
      const row = appendRow(c, p.event, p.timestamp);
      rows.push(row);
      eventRows.push(row);
      c.since += 1;
      if (c.since >= opts.checkpointEvery) {
        rows.push(await checkpointRow(c, "periodic"));
        c.since = 0;
      }
    }
    if (close) rows.push(await checkpointRow(c, "close"));
    return { c, rows, eventRows };
  }

  async function writeBatch(batch: Pending[], close: boolean): Promise<void> {
    const opened = chain === null;
    stats.batches += 1;
    const started = performance.now();
    const told = (ok: boolean) => {
      try {
        opts.onBatch?.({ events: batch.map((p) => p.event), seconds: (performance.now() - started) / 1000, ok });
      } catch (err) {
        log.error("audit onBatch hook failed", { err });
      }
    };
    try {
      const { c, rows, eventRows } = await buildRows(batch, close);
      const accessRequests = batch.flatMap((p) => (p.accessRequest ? [p.accessRequest] : []));
      await withDeadline(
        db.prisma.$transaction(
          async (tx) => {
            // Fail fast instead of queueing behind a lock: every caller of this batch is waiting.
            await tx.$queryRaw`SELECT set_config('statement_timeout', ${String(writeTimeoutMs)}, true), set_config('lock_timeout', ${String(writeTimeoutMs)}, true)`;
            await tx.$executeRaw(insertSql(rows));
            if (accessRequests.length > 0) await tx.$executeRaw(accessRequestsSql(accessRequests));
            if (opts.outbox && eventRows.length > 0) await opts.outbox(tx, eventRows);
          },
          { maxWait: writeTimeoutMs, timeout: writeTimeoutMs * 2 },
        ),
        deadlineMs,
      );
      chain = c;
      if (opened) stats.chains += 1;
      stats.events += eventRows.length;
      stats.rows += rows.length;
      stats.checkpoints += rows.length - eventRows.length;
      told(true);
      batch.forEach((p, i) => {
        const row = eventRows[i]!;
        p.resolve({ id: row.id, chainId: row.chainId, seq: BigInt(row.seq) });
      });
    } catch (err) {
      // We cannot tell whether the transaction committed (the connection may have died during
      // COMMIT, or the deadline may fire while it is still in flight). Continuing from either the
      // old or the new head could fork the chain, so the next batch starts a fresh chain instead;
      // the abandoned one simply ends without a closing checkpoint, which verify accepts.
      chain = null;
      stats.failedBatches += 1;
      told(false);
      log.error("audit batch failed; callers get 503 and the next batch opens a new chain", { events: batch.length, close, err });
      const failure = new ServiceUnavailableError("audit log unavailable", err);
      for (const p of batch) p.reject(failure);
      if (close) throw failure;
    }
  }

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
        queue.push({ event: write.event, accessRequest: write.accessRequest, timestamp: clock.now(), resolve, reject });
        kick();
      });
    },
    flush,
    close() {
      closing ??= (async () => {
        closed = true;
        await flush();
        if (chain === null) return; // nothing written, or the last chain was abandoned after a failure
        try {
          await writeBatch([], true);
        } catch {
          // already logged; shutdown goes on without the closing checkpoint
        }
      })();
      return closing;
    },
    stats: () => ({ ...stats, chainId: chain?.id ?? null, seq: chain?.seq ?? 0, queued: queue.length }),
  };
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
