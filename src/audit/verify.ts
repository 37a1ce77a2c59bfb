/**
 * Verifies the whole audit log offline: streams rows ordered by (chainId, seq) with keyset
 * pagination over raw SQL, recomputes every hash link, and checks every checkpoint's ES256
 * signature against the master public key it names. Reports the first broken link.
 *
 * What it catches: an edited row (hash mismatch), a deleted row (seq gap / prevHash mismatch), an
 * inserted row (link mismatch, or a row after its chain's closing checkpoint), a forged chain (no
 * valid opening checkpoint), and a chain recomputed after an edit (the next checkpoint's signed
 * head no longer matches). Inherent limit: rows after a chain's last checkpoint are linked but not
 * yet signed (`unsignedTailRows`); a chain that ends without a closing checkpoint (crash, failed
 * batch) is valid but counted in `unclosedChains`.
 */
import type { Database } from "../db/database.ts";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { importPublicJwk, isP256PublicJwk, type EcPublicJwk } from "../crypto/jwk.ts";
import { readJwsKid, verifyPayload } from "../crypto/sign.ts";
import { CHECKPOINT_TYP, genesisHash, rowHash, type CheckpointKind } from "./chain.ts";

export type PublicKeyLookup = (kid: string) => EcPublicJwk | undefined | Promise<EcPublicJwk | undefined>;

export interface VerifyOptions {
  publicKeys: PublicKeyLookup;
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
  /** Rows examined (up to and including the first invalid one). */
  checked: number;
  chains: number;
  firstInvalid?: InvalidLink;
  checkpoints: number;
  unclosedChains: number;
  unsignedTailRows: number;
  elapsedMs: number;
}

/** Columns in SELECT order; bigints come back as decimal text, exactly what the hash covers. */
type RawRow = [id: string, chainId: string, seq: string, timestamp: string, eventType: string, actor: string, target: string | null, startTime: string | null, endTime: string | null, success: boolean, details: string, prevHash: string, hash: string];

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
}

const KINDS = new Set<CheckpointKind>(["open", "periodic", "close"]);

export async function verifyAuditLog(db: Database, opts: VerifyOptions): Promise<VerifyResult> {
  const started = performance.now();
  const keyCache = new Map<string, Promise<CryptoKey | undefined>>();
  const keyFor = (kid: string) => {
    let k = keyCache.get(kid);
    if (!k) {
      k = Promise.resolve(opts.publicKeys(kid)).then((jwk) => (jwk && isP256PublicJwk(jwk) ? importPublicJwk(jwk, "ECDSA") : undefined));
      keyCache.set(kid, k);
    }
    return k;
  };

  let checked = 0, chains = 0, checkpoints = 0, unclosedChains = 0, unsignedTailRows = 0;
  let cur: ChainCursor | null = null;
  const endChain = (c: ChainCursor | null) => {
    if (!c) return;
    if (!c.closed) unclosedChains += 1;
    unsignedTailRows += c.sinceCheckpoint;
  };
  const result = (firstInvalid?: InvalidLink): VerifyResult => ({
    valid: firstInvalid === undefined,
    checked,
    chains,
    ...(firstInvalid ? { firstInvalid } : {}),
    checkpoints,
    unclosedChains,
    unsignedTailRows,
    elapsedMs: Math.round(performance.now() - started),
  });

  for await (const page of pages(db, opts.batchSize ?? 50_000)) {
    for (const r of page) {
      checked += 1;
      const [id, chainId, seqText, timestamp, eventType, actor, target, startTime, endTime, success, detailsText, prevHash, hash] = r;
      const seq = Number(seqText);
      const bad = (reason: string) => result({ seq, id, chainId, reason });
      if (cur === null || cur.chainId !== chainId) {
        endChain(cur);
        cur = { chainId, expectSeq: 1, head: genesisHash(chainId), closed: false, sinceCheckpoint: 0 };
        chains += 1;
      }
      if (seq !== cur.expectSeq) {
        return bad(cur.expectSeq === 1 ? `chain starts at seq ${seq}, not 1 (rows deleted?)` : `seq ${cur.expectSeq} is missing (row deleted?)`);
      }
      if (cur.closed) return bad("row after the chain's closing checkpoint (inserted?)");
      if (prevHash !== cur.head) return bad("prevHash does not match the previous row's hash (row inserted or deleted?)");
      let details: unknown;
      try {
        details = JSON.parse(detailsText);
      } catch {
        return bad("details is not JSON");
      }
      const computed = rowHash(prevHash, { id, chainId, seq: seqText, timestamp, eventType, actor, target, startTime, endTime, success, details });
      if (computed !== hash) return bad("hash does not match the row's contents (row edited?)");

      const isCheckpoint = eventType === "AUDIT_CHECKPOINT";
      if (seq === 1 && !isCheckpoint) return bad("chain does not open with a signed checkpoint (forged chain?)");
      if (isCheckpoint) {
        const problem = await checkCheckpoint(details, { chainId, seq, prevHash }, keyFor);
        if (problem) return bad(problem);
        checkpoints += 1;
        cur.sinceCheckpoint = 0;
        if ((details as { kind: CheckpointKind }).kind === "close") cur.closed = true;
      } else {
        cur.sinceCheckpoint += 1;
      }
      cur.head = hash;
      cur.expectSeq += 1;
    }
  }
  endChain(cur);
  return result();
}

/** Returns why a checkpoint row is not a valid signed statement of the chain head before it, or null. */
async function checkCheckpoint(
  details: unknown,
  at: { chainId: string; seq: number; prevHash: string },
  keyFor: (kid: string) => Promise<CryptoKey | undefined>,
): Promise<string | null> {
  const d = details as Record<string, unknown>;
  if (typeof d !== "object" || d === null || typeof d.kind !== "string" || !KINDS.has(d.kind as CheckpointKind)) return "checkpoint details are malformed";
  const kind = d.kind as CheckpointKind;
  if ((kind === "open") !== (at.seq === 1)) return kind === "open" ? "opening checkpoint in the middle of a chain" : "chain does not open with a signed checkpoint (forged chain?)";
  const statement = { chainId: at.chainId, seq: at.seq - 1, headHash: at.prevHash, kind };
  if (d.chainId !== statement.chainId || d.seq !== statement.seq || d.headHash !== statement.headHash) {
    return "checkpoint does not match the chain head before it (chain rewritten?)";
  }
  if (typeof d.signature !== "string") return "checkpoint is not signed";
  const kid = readJwsKid(d.signature);
  const key = kid === undefined ? undefined : await keyFor(kid);
  if (!key) return `checkpoint signed by an unknown key (kid ${kid ?? "missing"})`;
  try {
    const { payload } = await verifyPayload(d.signature, key, { typ: CHECKPOINT_TYP });
    if (canonicalJson(payload) !== canonicalJson(statement)) return "checkpoint signature is over a different chain head (chain rewritten?)";
  } catch {
    return "checkpoint signature does not verify (chain rewritten, or wrong key?)";
  }
  return null;
}

/** Master public keys by version (kid), all statuses: old checkpoints stay verifiable after rotation. */
export async function loadMasterPublicKeys(db: Database): Promise<PublicKeyLookup> {
  const keys = await db.prisma.masterKey.findMany({ select: { version: true, publicKeyJwk: true } });
  const byKid = new Map<string, EcPublicJwk>();
  for (const k of keys) if (isP256PublicJwk(k.publicKeyJwk)) byKid.set(String(k.version), k.publicKeyJwk);
  return (kid) => byKid.get(kid);
}
