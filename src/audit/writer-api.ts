/** The audit writer's API: its options, its stats and what it offers beyond AuditSink (src/audit/writer.ts). */
import type { Clock } from "../clock.ts";
import type { Database } from "../db/database.ts";
import type { Logger } from "../log.ts";
import type { AnchorSink } from "./anchors.ts";
import type { AuditOutbox } from "./batch-statement.ts";
import type { CheckpointSigner } from "./chain.ts";
import type { AuditEvent, AuditSink } from "./types.ts";
import type { StepHook } from "./writer-connection.ts";

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
  /** statement_timeout and lock_timeout of a batch write, ms (config AUDIT_WRITE_TIMEOUT_MS). */
  writeTimeoutMs?: number;
  /** Most events per batch. */
  maxBatch?: number;
  /**
   * Rows derived from the batch's event rows that commit exactly when they do, in the same
   * statement (the webhook outbox, src/webhooks/events.ts).
   */
  outbox?: AuditOutbox;
  /**
   * Test hook: called at each step of a batch write (fault injection). With it, a batch of plain
   * events runs its statement inside BEGIN … COMMIT so that every step has a moment to fault.
   */
  onStep?: StepHook;
  /** Told after every batch (metrics): its events, how long the write took, whether it committed. */
  onBatch?: (b: { events: readonly AuditEvent[]; seconds: number; ok: boolean }) => void;
}

export interface AuditWriterStats {
  /** Batches attempted (each is one write); compare with `events` to see group commit work. */
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
