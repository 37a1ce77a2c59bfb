/**
 * Verifies the whole audit log offline: streams rows ordered by (chainId, seq) with keyset
 * pagination over raw SQL, recomputes every hash link, checks every checkpoint's ES256 signature
 * against a master public key whose `master_keys` row passes its keyring MAC, and checks the
 * database against the anchor log (signed heads kept outside it). Lists every finding.
 *
 * Finding kinds:
 *   row-edited        a row's hash does not match its contents
 *   row-missing       a seq gap (a deleted row; a chain not starting at 1)
 *   link-broken       prevHash does not match the previous row (rows inserted or deleted)
 *   row-inserted      a row after the chain's sealing (close/recovery) checkpoint
 *   forged-chain      a chain that does not open with a signed checkpoint
 *   chain-rewritten   a checkpoint that does not match the chain head before it
 *   bad-signature     a checkpoint unsigned, malformed, or whose signature does not verify
 *   untrusted-key     a checkpoint signed by a key that is unknown or whose row fails its keyring MAC
 *   key-row           a master_keys row that fails its keyring MAC (forged or substituted key)
 *   unsealed-tail     rows after a chain's last checkpoint that no live writer holds
 *   anchor-missing    an anchored checkpoint row absent from its chain (tail deleted, truncated)
 *   anchor-mismatch   an anchored position holding a different row (rewritten)
 *   chain-missing     an anchored chain with no rows at all (chain deleted, table truncated)
 *   anchor-invalid    an anchor entry whose signature does not verify (the anchor log itself)
 * After a finding the verifier re-synchronises on the stored row and goes on, so one edit is one
 * finding and independent edits are each reported.
 */
import type { Database } from "../db/database.ts";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { importPublicJwk, isP256PublicJwk, type EcPublicJwk } from "../crypto/jwk.ts";
import { readJwsKid, verifyPayload } from "../crypto/sign.ts";
import { CHECKPOINT_KINDS, CHECKPOINT_TYP, SEALING_KINDS, genesisHash, rowHash, type CheckpointKind } from "./chain.ts";
import { readAnchorFile, type AnchorEntry } from "./anchors.ts";
import { liveChains } from "./chains.ts";
import { type Keyring, MasterKeyRepository, loadKeyring } from "../keys/repository.ts";

export type PublicKeyLookup = (kid: string) => EcPublicJwk | undefined | Promise<EcPublicJwk | undefined>;

export type FindingKind =
  | "row-edited"
  | "row-missing"
  | "link-broken"
  | "row-inserted"
  | "forged-chain"
  | "chain-rewritten"
  | "bad-signature"
  | "untrusted-key"
  | "key-row"
  | "unsealed-tail"
  | "anchor-missing"
  | "anchor-mismatch"
  | "chain-missing"
  | "anchor-invalid";

export interface Finding {
  kind: FindingKind;
  chainId: string | null;
  seq?: number;
  id?: string;
  reason: string;
}

export interface VerifyOptions {
  /** Public keys of master_keys rows whose keyring MAC holds (KeyService.keyring / loadKeyring). */
  publicKeys: PublicKeyLookup;
  /** master_keys rows refused by their keyring MAC: each is a `key-row` finding. */
  rejectedKeys?: Array<{ version: number; reason: string }>;
  /** Signed heads kept outside the database (the anchor log, or heads a monitor kept). */
  anchors?: AnchorEntry[];
  /** Lines of the anchor log that could not be read (reported as anchor-invalid). */
  malformedAnchorLines?: number[];
  /** Which chains a live writer holds (their unsigned tails are not findings). Default: none. */
  liveChains?: (chainIds: string[]) => Promise<Set<string>>;
  /** Rows per SELECT (default 50 000: fewer round trips; pg's row parsing dominates the cost). */
  batchSize?: number;
}

export interface InvalidLink {
  seq: number;
  id: string;
  chainId: string;
  reason: string;
}

export interface VerifyResult {
  valid: boolean;
  /** Rows examined. */
  checked: number;
  chains: number;
  /** The first finding that names a row (kept for v1 clients). */
  firstInvalid?: InvalidLink;
  findings: Finding[];
  checkpoints: number;
  /** Chains not ended by a close or recovery checkpoint. */
  unclosedChains: number;
  unsignedTailRows: number;
  anchorsChecked: number;
  elapsedMs: number;
}

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

/** The driver itself, not Prisma's row mapping: verify is a bulk scan. */
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

async function* pages(db: Database, batchSize: number): AsyncGenerator<RawRow[]> {
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

const KINDS = new Set<string>(CHECKPOINT_KINDS);
/** Findings beyond this many are counted but not listed (a truncated table is one finding per anchor chain). */
const MAX_FINDINGS = 1000;

export async function verifyAuditLog(db: Database, opts: VerifyOptions): Promise<VerifyResult> {
  const started = performance.now();
  const keyCache = new Map<string, Promise<CryptoKey | undefined>>();
  const keyFor = (kid: string) => {
    let k = keyCache.get(kid);
    if (!k) {
      k = Promise.resolve(opts.publicKeys(kid)).then((jwk) =>
        jwk && isP256PublicJwk(jwk) ? importPublicJwk(jwk, "ECDSA") : undefined,
      );
      keyCache.set(kid, k);
    }
    return k;
  };

  const findings: Finding[] = [];
  let dropped = 0;
  const report = (f: Finding) => {
    if (findings.length < MAX_FINDINGS) findings.push(f);
    else dropped += 1;
  };
  for (const r of opts.rejectedKeys ?? []) report({ kind: "key-row", chainId: null, reason: r.reason });
  for (const line of opts.malformedAnchorLines ?? [])
    report({
      kind: "anchor-invalid",
      chainId: null,
      reason: `anchor log line ${line} is not an anchor entry (torn write?)`,
    });

  // Anchors: each must verify, and names a row the database must hold.
  const anchorsByChain = new Map<string, Map<number, string>>();
  let anchorsChecked = 0;
  for (const a of opts.anchors ?? []) {
    anchorsChecked += 1;
    const problem = await checkSignedStatement(a.signature, a.statement, keyFor);
    if (problem) {
      report({
        kind: problem.kind === "untrusted-key" ? "untrusted-key" : "anchor-invalid",
        chainId: a.chainId,
        seq: a.seq,
        reason: `anchor: ${problem.reason}`,
      });
      continue;
    }
    let m = anchorsByChain.get(a.chainId);
    if (!m) anchorsByChain.set(a.chainId, (m = new Map()));
    m.set(a.seq, a.hash);
    // The checkpoint row at a.seq signed the head at statement.seq: that row is anchored too.
    if (a.statement.seq > 0) m.set(a.statement.seq, a.statement.headHash);
  }

  let checked = 0,
    chains = 0,
    checkpoints = 0,
    unclosedChains = 0,
    unsignedTailRows = 0;
  const tails: Array<{ chainId: string; seq: number; rows: number }> = [];
  const seenChains = new Set<string>();
  let cur: ChainCursor | null = null;
  const endChain = (c: ChainCursor | null) => {
    if (!c) return;
    if (!c.closed) unclosedChains += 1;
    unsignedTailRows += c.sinceCheckpoint;
    if (c.sinceCheckpoint > 0 && !c.closed)
      tails.push({ chainId: c.chainId, seq: c.expectSeq - 1, rows: c.sinceCheckpoint });
    for (const [seq] of c.anchored) {
      if (seq >= c.expectSeq)
        report({
          kind: "anchor-missing",
          chainId: c.chainId,
          seq,
          reason: `anchored row seq ${seq} is missing: the chain ends at seq ${c.expectSeq - 1} (rows deleted after it?)`,
        });
    }
  };

  for await (const page of pages(db, opts.batchSize ?? 50_000)) {
    for (const r of page) {
      checked += 1;
      const [
        id,
        chainId,
        seqText,
        timestamp,
        eventType,
        actor,
        target,
        startTime,
        endTime,
        success,
        detailsText,
        prevHash,
        hash,
      ] = r;
      const seq = Number(seqText);
      const bad = (kind: FindingKind, reason: string) => report({ kind, chainId, seq, id, reason });
      if (cur === null || cur.chainId !== chainId) {
        endChain(cur);
        cur = {
          chainId,
          expectSeq: 1,
          head: genesisHash(chainId),
          closed: false,
          sinceCheckpoint: 0,
          anchored: anchorsByChain.get(chainId) ?? new Map(),
        };
        seenChains.add(chainId);
        chains += 1;
      }
      // Each check below reports and then re-synchronises on the stored row.
      let linked = true;
      if (seq !== cur.expectSeq) {
        bad(
          "row-missing",
          cur.expectSeq === 1
            ? `chain starts at seq ${seq}, not 1 (rows deleted?)`
            : seq > cur.expectSeq
              ? `seq ${cur.expectSeq}${seq - cur.expectSeq > 1 ? `..${seq - 1}` : ""} missing (rows deleted?)`
              : `seq ${seq} out of order`,
        );
        linked = false;
        if (cur.expectSeq === 1) cur.closed = false;
      } else if (cur.closed) {
        bad("row-inserted", "row after the chain's sealing checkpoint (inserted?)");
      } else if (prevHash !== cur.head) {
        bad("link-broken", "prevHash does not match the previous row's hash (row inserted or deleted?)");
        linked = false;
      }
      const expected = cur.anchored.get(seq);
      if (expected !== undefined && expected !== hash)
        bad("anchor-mismatch", "this row is not the row the anchor log holds for its position (chain rewritten?)");
      let details: unknown;
      try {
        details = JSON.parse(detailsText);
      } catch {
        details = undefined;
      }
      if (details === undefined) bad("row-edited", "details is not JSON");
      else {
        const computed = rowHash(prevHash, {
          id,
          chainId,
          seq: seqText,
          timestamp,
          eventType,
          actor,
          target,
          startTime,
          endTime,
          success,
          details,
        });
        if (computed !== hash) bad("row-edited", "hash does not match the row's contents (row edited?)");
      }

      const isCheckpoint = eventType === "AUDIT_CHECKPOINT";
      if (seq === 1 && !isCheckpoint)
        bad("forged-chain", "chain does not open with a signed checkpoint (forged chain?)");
      if (isCheckpoint && details !== undefined) {
        const problem = await checkCheckpoint(
          details,
          { chainId, seq, prevHash, linked, headBefore: cur.head },
          keyFor,
        );
        if (problem) bad(problem.kind, problem.reason);
        checkpoints += 1;
        cur.sinceCheckpoint = 0;
        if (SEALING_KINDS.has(String((details as { kind?: unknown }).kind))) cur.closed = true;
      } else {
        cur.sinceCheckpoint += 1;
      }
      cur.head = hash;
      cur.expectSeq = seq + 1;
    }
  }
  endChain(cur);

  for (const [chainId, m] of anchorsByChain) {
    if (!seenChains.has(chainId))
      report({
        kind: "chain-missing",
        chainId,
        seq: Math.max(...m.keys()),
        reason: "an anchored chain has no rows in the database (chain deleted or table truncated?)",
      });
  }
  if (tails.length > 0) {
    const live = opts.liveChains ? await opts.liveChains(tails.map((t) => t.chainId)) : new Set<string>();
    for (const t of tails) {
      if (!live.has(t.chainId)) {
        report({
          kind: "unsealed-tail",
          chainId: t.chainId,
          seq: t.seq,
          reason: `${t.rows} row(s) after the chain's last signed checkpoint and no live writer holds the chain (rows deleted after them cannot be ruled out)`,
        });
      }
    }
  }
  if (dropped > 0)
    report({
      kind: findings[findings.length - 1]!.kind,
      chainId: null,
      reason: `${dropped} more finding(s) not listed`,
    });

  const firstRow = findings.find((f) => f.id !== undefined && f.seq !== undefined && f.chainId !== null);
  return {
    valid: findings.length === 0,
    checked,
    chains,
    ...(firstRow
      ? { firstInvalid: { seq: firstRow.seq!, id: firstRow.id!, chainId: firstRow.chainId!, reason: firstRow.reason } }
      : {}),
    findings,
    checkpoints,
    unclosedChains,
    unsignedTailRows,
    anchorsChecked,
    elapsedMs: Math.round(performance.now() - started),
  };
}

/** Verifies a checkpoint JWS over exactly `statement`; returns the finding if not. */
async function checkSignedStatement(
  signature: unknown,
  statement: unknown,
  keyFor: (kid: string) => Promise<CryptoKey | undefined>,
): Promise<{ kind: FindingKind; reason: string } | null> {
  if (typeof signature !== "string") return { kind: "bad-signature", reason: "checkpoint is not signed" };
  const kid = readJwsKid(signature);
  const key = kid === undefined ? undefined : await keyFor(kid);
  if (!key)
    return {
      kind: "untrusted-key",
      reason: `checkpoint signed by a key that is unknown or whose master_keys row fails its keyring MAC (kid ${kid ?? "missing"})`,
    };
  try {
    const { payload } = await verifyPayload(signature, key, { typ: CHECKPOINT_TYP });
    if (canonicalJson(payload) !== canonicalJson(statement))
      return {
        kind: "chain-rewritten",
        reason: "checkpoint signature is over a different chain head (chain rewritten?)",
      };
  } catch {
    return { kind: "bad-signature", reason: "checkpoint signature does not verify (chain rewritten, or wrong key?)" };
  }
  return null;
}

/** Returns why a checkpoint row is not a valid signed statement of the chain head before it, or null. */
async function checkCheckpoint(
  details: unknown,
  at: { chainId: string; seq: number; prevHash: string; linked: boolean; headBefore: string },
  keyFor: (kid: string) => Promise<CryptoKey | undefined>,
): Promise<{ kind: FindingKind; reason: string } | null> {
  const d = details as Record<string, unknown>;
  if (typeof d !== "object" || d === null || typeof d.kind !== "string" || !KINDS.has(d.kind))
    return { kind: "bad-signature", reason: "checkpoint details are malformed" };
  const kind = d.kind as CheckpointKind;
  if ((kind === "open") !== (at.seq === 1)) {
    return kind === "open"
      ? { kind: "row-inserted", reason: "opening checkpoint in the middle of a chain" }
      : { kind: "forged-chain", reason: "chain does not open with a signed checkpoint (forged chain?)" };
  }
  const statement: Record<string, unknown> = { chainId: at.chainId, seq: at.seq - 1, headHash: at.prevHash, kind };
  if (kind === "recovery") statement.lastRowId = d.lastRowId;
  if (d.chainId !== statement.chainId || d.seq !== statement.seq || d.headHash !== statement.headHash) {
    return { kind: "chain-rewritten", reason: "checkpoint does not match the chain head before it (chain rewritten?)" };
  }
  return checkSignedStatement(d.signature, statement, keyFor);
}

/**
 * Master public keys by version (kid), all statuses (old checkpoints stay verifiable after
 * rotation), trusting only rows whose keyring MAC holds under `macKey` (keyringMacKey(KEK)).
 */
export async function loadMasterPublicKeys(
  db: Database,
  macKey: Uint8Array,
): Promise<{ publicKeys: PublicKeyLookup; rejectedKeys: Array<{ version: number; reason: string }> }> {
  const k = loadKeyring(await new MasterKeyRepository(db, macKey).list(), macKey);
  return { publicKeys: (kid) => k.publicKeys.get(kid), rejectedKeys: k.rejected };
}

/**
 * The verification the API and `audit:verify` run: the trusted keys (KeyService.keyring(), or
 * loadKeyring with the KEK's MAC key), the anchors of `anchorFile` (and any given), and live writers from the database.
 */
export async function verifyWithKeyring(
  db: Database,
  opts: { keyring: Keyring; anchorFile?: string | null; anchors?: AnchorEntry[]; batchSize?: number },
): Promise<VerifyResult> {
  const keys = { publicKeys: (kid: string) => opts.keyring.publicKeys.get(kid), rejectedKeys: opts.keyring.rejected };
  const fromFile = opts.anchorFile ? await readAnchorFile(opts.anchorFile) : { entries: [], malformed: [] };
  return verifyAuditLog(db, {
    ...keys,
    anchors: [...fromFile.entries, ...(opts.anchors ?? [])],
    malformedAnchorLines: fromFile.malformed,
    liveChains: (ids) => liveChains(db, ids),
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
  });
}
