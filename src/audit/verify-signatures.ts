/**
 * The verifier's key checks: a checkpoint (or anchor) signature must verify, over exactly the
 * statement its position implies, under a trusted master public key (one whose master_keys row
 * passes its keyring MAC).
 */
import { canonicalJson } from "../crypto/canonical-json.ts";
import { importPublicJwk, isP256PublicJwk, type EcPublicJwk } from "../crypto/jwk.ts";
import { readJwsKid, verifyPayload } from "../crypto/sign.ts";
import { CHECKPOINT_KINDS, CHECKPOINT_TYP, type CheckpointKind } from "./chain.ts";
import type { Problem } from "./verify-findings.ts";

export type PublicKeyLookup = (kid: string) => EcPublicJwk | undefined | Promise<EcPublicJwk | undefined>;
export type KeyFor = (kid: string) => Promise<CryptoKey | undefined>;

/** Imports each trusted key once. */
export function keyCache(publicKeys: PublicKeyLookup): KeyFor {
  const cache = new Map<string, Promise<CryptoKey | undefined>>();
  return (kid) => {
    let k = cache.get(kid);
    if (!k) {
      k = Promise.resolve(publicKeys(kid)).then((jwk) =>
        jwk && isP256PublicJwk(jwk) ? importPublicJwk(jwk, "ECDSA") : undefined,
      );
      cache.set(kid, k);
    }
    return k;
  };
}

/** Verifies a checkpoint JWS over exactly `statement`; returns the problem if not. */
export async function checkSignedStatement(
  signature: unknown,
  statement: unknown,
  keyFor: KeyFor,
): Promise<Problem | null> {
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

const KINDS = new Set<string>(CHECKPOINT_KINDS);

/** Returns why a checkpoint row is not a valid signed statement of the chain head before it, or null. */
export async function checkCheckpoint(
  details: unknown,
  at: { chainId: string; seq: number; prevHash: string },
  keyFor: KeyFor,
): Promise<Problem | null> {
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
