/**
 * Re-sealing of OAuth token envelopes for rotation: open each value (a v2 token envelope under its
 * version's token root, or a v1 envelope with its slice private key) checking the ctx it must
 * carry, then seal it as a v2 token envelope under the target version's token root with the ctx of
 * the row version the write-back creates. Pure and self-contained, so it runs the same on the main
 * thread and inside a reseal worker (jobs carry just the roots and slice keys their items need;
 * they exist only inside this process, never in a response).
 */
import { zeroize } from "./bytes.ts";
import { decryptEnvelope } from "./envelope.ts";
import { type EcPrivateJwk, importPrivateJwk } from "./jwk.ts";
import { type ParsedTokenEnvelope, openTokenEnvelope, sealTokenEnvelope } from "./token-envelope.ts";

export type ResealSource = { format: "v2"; version: number } | { format: "v1"; kid: string; sliceSeconds: number };

export interface TokenResealItem {
  jwe: string;
  /** `jwe` already split and its header checked (on the calling thread), so it is not parsed twice. */
  envelope?: ParsedTokenEnvelope;
  /** The ctx the stored envelope must carry (v2 ctx of the row version read, or the v1 ctx). */
  expectedCtx: string;
  /** The ctx of the new envelope. */
  newCtx: string;
  from: ResealSource;
}

export interface TokenResealJob {
  items: TokenResealItem[];
  /** Token roots by version: the target's and those of v2 sources. */
  tokenRoots: Record<number, Uint8Array>;
  /** v1 sources' slice private keys by kid. */
  privateKeys: Record<string, EcPrivateJwk | CryptoKey>;
  toVersion: number;
}

/** One new JWE per item, or null where the item does not open (wrong ctx, key, tag…). */
export async function runTokenResealJob(job: TokenResealJob): Promise<Array<string | null>> {
  // A JWK (what a worker receives) is imported once per kid, not once per item.
  const priv = new Map<string, Promise<CryptoKey>>();
  const privFor = (kid: string) => {
    let k = priv.get(kid);
    if (!k) {
      const j = job.privateKeys[kid];
      if (!j) throw new Error(`no private key for ${kid}`);
      k = "kty" in j ? importPrivateJwk(j, "ECDH") : Promise.resolve(j);
      priv.set(kid, k);
    }
    return k;
  };
  const toRoot = job.tokenRoots[job.toVersion];
  if (!toRoot) throw new Error(`no token root for version ${job.toVersion}`);
  const out: Array<string | null> = [];
  for (const it of job.items) {
    let pt: Uint8Array;
    try {
      if (it.from.format === "v2") {
        const root = job.tokenRoots[it.from.version];
        if (!root) throw new Error("no root");
        pt = openTokenEnvelope(it.envelope ?? it.jwe, { root, version: it.from.version, expectedCtx: it.expectedCtx });
      } else {
        pt = await decryptEnvelope(it.jwe, {
          privateKey: await privFor(it.from.kid),
          expectedCtx: it.expectedCtx,
          expectedKid: it.from.kid,
          sliceSeconds: it.from.sliceSeconds,
        });
      }
    } catch {
      out.push(null);
      continue;
    }
    try {
      out.push(sealTokenEnvelope(pt, { root: toRoot, version: job.toVersion, ctx: it.newCtx }));
    } finally {
      zeroize(pt);
    }
  }
  return out;
}
