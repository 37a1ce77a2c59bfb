/**
 * The verifier's row checks: rows streamed in (chainId, seq) order (keyset pagination over the
 * driver itself, not Prisma's row mapping: verify is a bulk scan), each chain walked from its
 * genesis hash: seq continuity, prevHash links, recomputed row hashes, anchored positions,
 * checkpoints (src/audit/verify-signatures.ts) and what follows a sealing one.
 */
import type { Database } from "../db/database.ts";
import { SEALING_KINDS, genesisHash, rowHash, type ChainedFields } from "./chain.ts";
import { reportAnchoredPastEnd, type AnchoredRows } from "./verify-anchors.ts";
import type { FindingKind, Findings } from "./verify-findings.ts";
import { checkCheckpoint, type KeyFor } from "./verify-signatures.ts";

/** Columns in SELECT order; bigints come back as decimal text, exactly what the hash covers. */
type RawRow = [
  id: string,
  chainId: string,
  seq: string,
  timestamp: string,
  eventType: string,
  actor: string,
  target: string | null,
  startTime: string | null,
  endTime: string | null,
  success: boolean,
  details: string,
  prevHash: string,
  hash: string,
];

const COLUMNS = `"id"::text, "chainId", "seq"::text, "timestamp"::text, "eventType", "actor", "target", "startTime"::text, "endTime"::text, "success", "details"::text, "prevHash", "hash"`;
// ORDER BY names the table's columns (a.), not the text-cast output columns of the same name.
const FIRST_PAGE = `SELECT ${COLUMNS} FROM "audit_logs" a ORDER BY a."chainId", a."seq" LIMIT $1`;
const NEXT_PAGE = `SELECT ${COLUMNS} FROM "audit_logs" a WHERE (a."chainId", a."seq") > ($2, $3::bigint) ORDER BY a."chainId", a."seq" LIMIT $1`;

function rawQuery(db: Database): (sql: string, params: unknown[]) => Promise<RawRow[]> {
  if (db.pool) {
    const pool = db.pool;
    return async (text, values) => (await pool.query<RawRow>({ text, values, rowMode: "array" })).rows;
  }
  if (db.pglite) {
    const pglite = db.pglite;
    return async (text, values) => (await pglite.query<RawRow>(text, values, { rowMode: "array" })).rows;
  }
  throw new Error("verifyAuditLog needs a PostgreSQL pool or a PGlite instance");
}

export async function* auditRowPages(db: Database, batchSize: number): AsyncGenerator<RawRow[]> {
  const query = rawQuery(db);
  let next: Promise<RawRow[]> = query(FIRST_PAGE, [batchSize]);
  for (;;) {
    const rows = await next;
    if (rows.length === 0) return;
    const last = rows[rows.length - 1]!;
    // Fetch the next page while this one is being hashed.
    next = rows.length < batchSize ? Promise.resolve([]) : query(NEXT_PAGE, [batchSize, last[1], last[2]]);
    yield rows;
  }
}

interface ChainCursor {
  chainId: string;
  expectSeq: number;
  head: string;
  closed: boolean;
  sinceCheckpoint: number;
  /** Anchored rows of this chain by seq → expected hash. */
  anchored: Map<number, string>;
}

/** Walks the rows of every chain in order, reporting each problem and re-synchronising on the stored row. */
export class ChainWalker {
  checked = 0;
  chains = 0;
  checkpoints = 0;
  unclosedChains = 0;
  unsignedTailRows = 0;
  /** Chains ending in rows after their last checkpoint, without a sealing one. */
  readonly tails: Array<{ chainId: string; seq: number; rows: number }> = [];
  readonly seen = new Set<string>();
  #cur: ChainCursor | null = null;

  constructor(
    private readonly anchored: AnchoredRows,
    private readonly keyFor: KeyFor,
    private readonly findings: Findings,
  ) {}

  /** Checks one row; returns a promise only when a signature must be checked (the caller awaits it before the next row). */
  row(r: RawRow): Promise<void> | undefined {
    this.checked += 1;
    const detailsText = r[10];
    const prevHash = r[11];
    const hash = r[12];
    const f: ChainedFields = {
      id: r[0],
      chainId: r[1],
      seq: r[2],
      timestamp: r[3],
      eventType: r[4],
      actor: r[5],
      target: r[6],
      startTime: r[7],
      endTime: r[8],
      success: r[9],
      details: undefined,
    };
    const { id, chainId } = f;
    const seq = Number(f.seq);
    const bad = (kind: FindingKind, reason: string) => this.findings.report({ kind, chainId, seq, id, reason });
    let cur = this.#cur;
    if (cur === null || cur.chainId !== chainId) {
      this.end();
      cur = {
        chainId,
        expectSeq: 1,
        head: genesisHash(chainId),
        closed: false,
        sinceCheckpoint: 0,
        anchored: this.anchored.get(chainId) ?? new Map(),
      };
      this.#cur = cur;
      this.seen.add(chainId);
      this.chains += 1;
    }
    if (seq !== cur.expectSeq) {
      bad(
        "row-missing",
        cur.expectSeq === 1
          ? `chain starts at seq ${seq}, not 1 (rows deleted?)`
          : seq > cur.expectSeq
            ? `seq ${cur.expectSeq}${seq - cur.expectSeq > 1 ? `..${seq - 1}` : ""} missing (rows deleted?)`
            : `seq ${seq} out of order`,
      );
      if (cur.expectSeq === 1) cur.closed = false;
    } else if (cur.closed) {
      bad("row-inserted", "row after the chain's sealing checkpoint (inserted?)");
    } else if (prevHash !== cur.head) {
      bad("link-broken", "prevHash does not match the previous row's hash (row inserted or deleted?)");
    }
    const expected = cur.anchored.get(seq);
    if (expected !== undefined && expected !== hash)
      bad("anchor-mismatch", "this row is not the row the anchor log holds for its position (chain rewritten?)");
    try {
      f.details = JSON.parse(detailsText);
    } catch {
      f.details = undefined;
    }
    if (f.details === undefined) bad("row-edited", "details is not JSON");
    else if (rowHash(prevHash, f) !== hash) bad("row-edited", "hash does not match the row's contents (row edited?)");

    const isCheckpoint = f.eventType === "AUDIT_CHECKPOINT";
    if (seq === 1 && !isCheckpoint) bad("forged-chain", "chain does not open with a signed checkpoint (forged chain?)");
    cur.head = hash;
    cur.expectSeq = seq + 1;
    if (!isCheckpoint || f.details === undefined) {
      cur.sinceCheckpoint += 1;
      return undefined;
    }
    this.checkpoints += 1;
    cur.sinceCheckpoint = 0;
    if (SEALING_KINDS.has(String((f.details as { kind?: unknown }).kind))) cur.closed = true;
    return checkCheckpoint(f.details, { chainId, seq, prevHash }, this.keyFor).then((problem) => {
      if (problem) bad(problem.kind, problem.reason);
    });
  }

  /** Ends the current chain (at a new chain, and after the last row). */
  end(): void {
    const c = this.#cur;
    if (!c) return;
    this.#cur = null;
    if (!c.closed) this.unclosedChains += 1;
    this.unsignedTailRows += c.sinceCheckpoint;
    if (c.sinceCheckpoint > 0 && !c.closed)
      this.tails.push({ chainId: c.chainId, seq: c.expectSeq - 1, rows: c.sinceCheckpoint });
    reportAnchoredPastEnd(c.chainId, c.expectSeq - 1, c.anchored, this.findings);
  }
}
