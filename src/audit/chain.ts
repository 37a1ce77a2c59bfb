/**
 * The audit hash chain: the exact bytes each row's hash covers, the genesis value a chain starts
 * from, and the checkpoint statement the master key signs. Shared by the writer and the verifier.
 *
 * Byte layout (version 1), all text UTF-8, all hashes lowercase hex SHA-256:
 *
 *   genesis(chainId) = SHA-256( "chronokms.audit.genesis\n" || chainId )
 *   hash(row)        = SHA-256( prevHash || "\n" || canonicalJson([
 *                        "chronokms.audit.v1", id, chainId, seq, timestamp, eventType, actor,
 *                        target, startTime, endTime, success, details ]) )
 *
 * where seq, timestamp, startTime and endTime are decimal strings (exactly what the BIGINT
 * columns hold, so no precision question arises), target/startTime/endTime are null when absent,
 * success is a JSON boolean, and details is the row's JSON object (canonicalJson sorts its keys
 * at every depth; src/crypto/canonical-json.ts). A fixed-order array, not an object, so the layout
 * is positional and cannot be reinterpreted by adding a field.
 */
import { canonicalJson } from "../crypto/canonical-json.ts";

export const CHAIN_VERSION_TAG = "chronokms.audit.v1";
export const CHECKPOINT_TYP = "chronokms-audit-checkpoint+json";

/** The fields a row's hash covers, in the representation the verifier reads back from the database. */
export interface ChainedFields {
  id: string;
  chainId: string;
  seq: string;
  timestamp: string;
  eventType: string;
  actor: string;
  target: string | null;
  startTime: string | null;
  endTime: string | null;
  success: boolean;
  details: unknown;
}

export function genesisHash(chainId: string): string {
  return Bun.SHA256.hash(`chronokms.audit.genesis\n${chainId}`, "hex");
}

/**
 * The canonical JSON body a row's hash covers (the array of the header comment). `detailsJson`:
 * canonicalJson(f.details) when the writer has it already; verification never passes it.
 */
export function rowBody(f: ChainedFields, detailsJson?: string): string {
  // Hot path of verify. Every element but details is a string, boolean or null, for which
  // canonicalJson is exactly JSON.stringify, so the native call builds the prefix; only details
  // goes through canonicalJson. test/audit/chain.test.ts checks this equals canonicalJson(array).
  const head = JSON.stringify([
    CHAIN_VERSION_TAG,
    f.id,
    f.chainId,
    f.seq,
    f.timestamp,
    f.eventType,
    f.actor,
    f.target,
    f.startTime,
    f.endTime,
    f.success,
  ]);
  return `${head.slice(0, -1)},${detailsJson ?? canonicalJson(f.details)}]`;
}

export function rowHash(prevHash: string, f: ChainedFields, detailsJson?: string): string {
  return Bun.SHA256.hash(`${prevHash}\n${rowBody(f, detailsJson)}`, "hex");
}

/**
 * What a checkpoint signs: the chain head (the hash of row `seq`) at the moment the checkpoint is
 * appended. `kind` is signed too, so a closing checkpoint cannot be relabelled to hide rows
 * appended after it. An opening checkpoint signs seq 0 and the chain's genesis hash. `periodic`
 * checkpoints come every N rows and every AUDIT_CHECKPOINT_SECONDS; `close` ends a chain at
 * shutdown; `recovery` ends a chain whose writer is gone, written by another process, and also
 * names the chain's last row (`lastRowId`). Both `close` and `recovery` seal a chain.
 */
export type CheckpointKind = "open" | "periodic" | "close" | "recovery";

export const CHECKPOINT_KINDS: readonly CheckpointKind[] = ["open", "periodic", "close", "recovery"];
export const SEALING_KINDS: ReadonlySet<string> = new Set(["close", "recovery"]);

export interface CheckpointStatement {
  chainId: string;
  seq: number;
  headHash: string;
  kind: CheckpointKind;
  /** Only on `recovery`: the id of row `seq`. */
  lastRowId?: string;
}

/** The details object of an AUDIT_CHECKPOINT row. `signature` is absent only when no signer is configured. */
export interface CheckpointDetails extends CheckpointStatement {
  signature?: string;
}

/** Signs a checkpoint statement: a compact ES256 JWS (kid = master key version). KeyService.sign in production. */
export type CheckpointSigner = (payload: CheckpointStatement, typ: string) => Promise<string>;

/**
 * PostgreSQL session advisory lock a live writer holds on its chain: pg_advisory_lock(CHAIN_LOCK_CLASS,
 * hashtext(chainId)). Another process that can take it knows the chain's writer is gone.
 */
export const CHAIN_LOCK_CLASS = 0x636b6101; // "cka\x01"
