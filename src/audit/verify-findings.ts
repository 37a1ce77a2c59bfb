/** What the verifier reports: finding kinds (listed in src/audit/verify.ts) and the bounded list they are collected in. */

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

/** A problem found by a check, before it is placed (chain, row). */
export type Problem = { kind: FindingKind; reason: string };

/** Findings beyond this many are counted but not listed (a truncated table is one finding per anchor chain). */
const MAX_FINDINGS = 1000;

export class Findings {
  readonly list: Finding[] = [];
  #dropped = 0;

  report(f: Finding): void {
    if (this.list.length < MAX_FINDINGS) this.list.push(f);
    else this.#dropped += 1;
  }

  /** The list, ending with a count of those not listed. */
  done(): Finding[] {
    if (this.#dropped > 0)
      this.list.push({
        kind: this.list[this.list.length - 1]!.kind,
        chainId: null,
        reason: `${this.#dropped} more finding(s) not listed`,
      });
    return this.list;
  }
}
