/**
 * Verifies the whole audit log offline: streams rows ordered by (chainId, seq) with keyset
 * pagination over raw SQL, recomputes every hash link (src/audit/verify-rows.ts), checks every
 * checkpoint's ES256 signature against a master public key whose `master_keys` row passes its
 * keyring MAC (src/audit/verify-signatures.ts), and checks the database against the anchor log,
 * signed heads kept outside it (src/audit/verify-anchors.ts). Lists every finding.
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
import type { EcPublicJwk } from "../crypto/index.ts";
import type { Database } from "../db/database.ts";
import { readAnchorFile, type AnchorEntry } from "./anchors.ts";
import { liveChains } from "./chains.ts";
import { anchoredRows, reportMissingChains } from "./verify-anchors.ts";
import { Findings, type Finding } from "./verify-findings.ts";
import { auditRowPages, ChainWalker } from "./verify-rows.ts";
import { keyCache, type PublicKeyLookup } from "./verify-signatures.ts";

export type { Finding, FindingKind } from "./verify-findings.ts";
export type { PublicKeyLookup } from "./verify-signatures.ts";

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

export async function verifyAuditLog(db: Database, opts: VerifyOptions): Promise<VerifyResult> {
  const started = performance.now();
  const keyFor = keyCache(opts.publicKeys);
  const findings = new Findings();
  for (const r of opts.rejectedKeys ?? []) findings.report({ kind: "key-row", chainId: null, reason: r.reason });
  for (const line of opts.malformedAnchorLines ?? [])
    findings.report({
      kind: "anchor-invalid",
      chainId: null,
      reason: `anchor log line ${line} is not an anchor entry (torn write?)`,
    });

  const anchors = opts.anchors ?? [];
  const anchored = await anchoredRows(anchors, keyFor, findings);
  const walk = new ChainWalker(anchored, keyFor, findings);
  for await (const page of auditRowPages(db, opts.batchSize ?? 50_000)) {
    for (const r of page) {
      const signature = walk.row(r);
      if (signature) await signature;
    }
  }
  walk.end();
  reportMissingChains(anchored, walk.seen, findings);

  const tails = walk.tails;
  if (tails.length > 0) {
    const live = opts.liveChains ? await opts.liveChains(tails.map((t) => t.chainId)) : new Set<string>();
    for (const t of tails) {
      if (!live.has(t.chainId)) {
        findings.report({
          kind: "unsealed-tail",
          chainId: t.chainId,
          seq: t.seq,
          reason: `${t.rows} row(s) after the chain's last signed checkpoint and no live writer holds the chain (rows deleted after them cannot be ruled out)`,
        });
      }
    }
  }
  const list = findings.done();
  const firstRow = list.find((f) => f.id !== undefined && f.seq !== undefined && f.chainId !== null);
  return {
    valid: list.length === 0,
    checked: walk.checked,
    chains: walk.chains,
    ...(firstRow
      ? { firstInvalid: { seq: firstRow.seq!, id: firstRow.id!, chainId: firstRow.chainId!, reason: firstRow.reason } }
      : {}),
    findings: list,
    checkpoints: walk.checkpoints,
    unclosedChains: walk.unclosedChains,
    unsignedTailRows: walk.unsignedTailRows,
    anchorsChecked: anchors.length,
    elapsedMs: Math.round(performance.now() - started),
  };
}

/**
 * The verification the API and `audit:verify` run: the trusted keys (KeyService.keyring(), or
 * loadKeyring with the KEK's MAC key), the anchors of `anchorFile` (and any given), and live writers from the database.
 */
/**
 * The trusted master public keys by version (kid) and the versions refused, as the key service
 * (`KeyService.keyring()`) or `loadKeyring` (src/keys/repository.ts) provide them. Declared here so
 * the audit layer, which the key service writes through, does not import from src/keys.
 */
export interface TrustedKeyring {
  publicKeys: Map<string, EcPublicJwk>;
  rejected: Array<{ version: number; reason: string }>;
}

export async function verifyWithKeyring(
  db: Database,
  opts: { keyring: TrustedKeyring; anchorFile?: string | null; anchors?: AnchorEntry[]; batchSize?: number },
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
