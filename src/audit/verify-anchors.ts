/**
 * The verifier's anchor checks: the anchor log (signed heads kept outside the database) names rows
 * the database must hold. Each entry must verify; then every anchored position must be present in
 * its chain and hold the anchored row, and every anchored chain must exist at all.
 */
import type { AnchorEntry } from "./anchors.ts";
import type { Findings } from "./verify-findings.ts";
import { checkSignedStatement, type KeyFor } from "./verify-signatures.ts";

/** Anchored rows by chain: seq → the hash the row at that position must have. */
export type AnchoredRows = Map<string, Map<number, string>>;

/** Checks each entry's signature (reporting those that fail) and returns the positions the valid ones anchor. */
export async function anchoredRows(
  anchors: readonly AnchorEntry[],
  keyFor: KeyFor,
  findings: Findings,
): Promise<AnchoredRows> {
  const byChain: AnchoredRows = new Map();
  for (const a of anchors) {
    const problem = await checkSignedStatement(a.signature, a.statement, keyFor);
    if (problem) {
      findings.report({
        kind: problem.kind === "untrusted-key" ? "untrusted-key" : "anchor-invalid",
        chainId: a.chainId,
        seq: a.seq,
        reason: `anchor: ${problem.reason}`,
      });
      continue;
    }
    let m = byChain.get(a.chainId);
    if (!m) {
      m = new Map();
      byChain.set(a.chainId, m);
    }
    m.set(a.seq, a.hash);
    // The checkpoint row at a.seq signed the head at statement.seq: that row is anchored too.
    if (a.statement.seq > 0) m.set(a.statement.seq, a.statement.headHash);
  }
  return byChain;
}

/** At a chain's end: anchored positions past it were deleted. */
export function reportAnchoredPastEnd(
  chainId: string,
  lastSeq: number,
  anchored: ReadonlyMap<number, string>,
  findings: Findings,
): void {
  for (const [seq] of anchored) {
    if (seq > lastSeq)
      findings.report({
        kind: "anchor-missing",
        chainId,
        seq,
        reason: `anchored row seq ${seq} is missing: the chain ends at seq ${lastSeq} (rows deleted after it?)`,
      });
  }
}

/** After the scan: anchored chains the database holds no row of. */
export function reportMissingChains(byChain: AnchoredRows, seen: ReadonlySet<string>, findings: Findings): void {
  for (const [chainId, m] of byChain) {
    if (!seen.has(chainId))
      findings.report({
        kind: "chain-missing",
        chainId,
        seq: Math.max(...m.keys()),
        reason: "an anchored chain has no rows in the database (chain deleted or table truncated?)",
      });
  }
}
