/**
 * The rows a batch appends to a chain: each event row hashed onto the chain head, and the signed
 * checkpoints a chain gets (opening, every `checkpointEvery` event rows, time-based, closing,
 * recovery). Pure apart from the signer; the writer advances its chain state only once a batch
 * has committed, so rows are always built on a copy.
 */
import { canonicalJson } from "../crypto/canonical-json.ts";
import {
  CHECKPOINT_TYP,
  genesisHash,
  rowHash,
  type CheckpointDetails,
  type CheckpointKind,
  type CheckpointSigner,
  type CheckpointStatement,
} from "./chain.ts";
import type { AuditLogItem } from "./query.ts";
import type { AuditEvent } from "./types.ts";

export const CHECKPOINT_ACTOR = "system:audit";

/** A row as written: the API's item shape, with details always an object (and its canonical JSON, hashed and stored). */
export type Row = Omit<AuditLogItem, "details" | "createdAt"> & {
  details: Record<string, unknown>;
  detailsJson: string;
};

export interface ChainState {
  id: string;
  seq: number;
  head: string;
  /** Event rows since the last checkpoint. */
  since: number;
  /** Clock time of the last committed checkpoint. */
  signedAt: number;
}

export interface BatchRows {
  /** The chain state after the batch (null when the batch writes nothing and no chain was open). */
  c: ChainState | null;
  /** Every row, checkpoints included, in chain order. */
  rows: Row[];
  /** The event rows only, in the order of the events given. */
  eventRows: Row[];
}

const nullableString = (n: number | null) => (n === null ? null : String(n));

export function signCheckpoint(
  signer: CheckpointSigner | undefined,
  statement: CheckpointStatement,
): Promise<CheckpointDetails> {
  return signer
    ? signer(statement, CHECKPOINT_TYP).then((signature) => ({ ...statement, signature }))
    : Promise.resolve(statement);
}

export function checkpointEvent(chainId: string, details: CheckpointDetails): AuditEvent {
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

/** Appends one row to the chain state `c` (advancing it) and returns the row. */
export function appendRow(c: { seq: number; head: string; id: string }, e: AuditEvent, timestamp: number): Row {
  c.seq += 1;
  const details = e.details ?? {};
  const row: Row = {
    id: Bun.randomUUIDv7(),
    chainId: c.id,
    seq: c.seq,
    timestamp,
    eventType: e.eventType,
    actor: e.actor,
    target: e.target ?? null,
    startTime: e.startTime ?? null,
    endTime: e.endTime ?? null,
    success: e.success,
    details,
    detailsJson: canonicalJson(details),
    prevHash: c.head,
    hash: "",
  };
  row.hash = rowHash(
    c.head,
    {
      ...row,
      seq: String(row.seq),
      timestamp: String(row.timestamp),
      startTime: nullableString(row.startTime),
      endTime: nullableString(row.endTime),
    },
    row.detailsJson,
  );
  c.head = row.hash;
  return row;
}

export interface BuildOptions {
  signer: CheckpointSigner | undefined;
  now: () => number;
  checkpointEvery: number;
}

/**
 * Builds a batch's rows on a copy of `base` (or on a new chain `newChainId`, which opens with a
 * signed checkpoint): the events, a periodic checkpoint every `checkpointEvery` of them, then a
 * closing checkpoint (`close`) or a time-based one (`timed`, when the chain has unsigned rows).
 */
export async function buildBatchRows(
  o: BuildOptions,
  events: ReadonlyArray<{ event: AuditEvent; timestamp: number }>,
  base: ChainState | null,
  newChainId: string | null,
  close: boolean,
  timed: boolean,
): Promise<BatchRows> {
  const rows: Row[] = [];
  const eventRows: Row[] = [];
  const checkpoint = async (c: ChainState, kind: CheckpointKind) => {
    const details = await signCheckpoint(o.signer, { chainId: c.id, seq: c.seq, headHash: c.head, kind });
    rows.push(appendRow(c, checkpointEvent(c.id, details), o.now()));
  };
  let c: ChainState;
  if (base) {
    c = { ...base };
  } else {
    c = { id: newChainId!, seq: 0, head: genesisHash(newChainId!), since: 0, signedAt: o.now() };
    await checkpoint(c, "open");
  }
  for (const e of events) {
    const row = appendRow(c, e.event, e.timestamp);
    rows.push(row);
    eventRows.push(row);
    c.since += 1;
    if (c.since >= o.checkpointEvery) {
      await checkpoint(c, "periodic");
      c.since = 0;
    }
  }
  if (close) await checkpoint(c, "close");
  else if (timed && c.since > 0) {
    await checkpoint(c, "periodic");
    c.since = 0;
  }
  if (rows.length > eventRows.length) c.signedAt = o.now();
  return { c, rows, eventRows };
}
