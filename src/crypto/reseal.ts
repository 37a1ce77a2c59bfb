/**
 * Re-encryption of envelopes from one slice key to another (key rotation): open with the old slice
 * private key and the expected ctx, seal to the new slice public key with the same ts and ctx. Pure
 * and self-contained, so it runs the same on the main thread and inside a worker.
 */
import { type KeyObject, createPrivateKey, createPublicKey } from "node:crypto";
import { zeroize } from "./bytes.ts";
import { decryptEnvelope, encryptEnvelope } from "./envelope.ts";
import type { EcPrivateJwk, EcPublicJwk } from "./jwk.ts";

export interface ResealItem {
  jwe: string;
  /** The ctx the envelope must carry (and keeps). */
  ctx: string;
  /** The envelope's ts (kept). */
  ts: number;
  /** Old slice key (kid) and its version's slice length. */
  fromKid: string;
  fromSliceSeconds: number;
  /** New slice key (kid): the target version's slice of ts. */
  toKid: string;
}

export interface ResealJob {
  items: ResealItem[];
  /** Old slice private keys by kid (only those the items need). */
  privateKeys: Record<string, EcPrivateJwk | CryptoKey | KeyObject>;
  /** New slice public keys by kid. */
  publicKeys: Record<string, EcPublicJwk | CryptoKey | KeyObject>;
  toSliceSeconds: number;
}

/** One new JWE per item, or null where the item does not open (wrong ctx, key, tag…). */
export async function runResealJob(job: ResealJob): Promise<Array<string | null>> {
  // JWK → KeyObject once per job, not once per envelope (~10 µs each).
  const priv = new Map<string, CryptoKey | KeyObject>();
  const pub = new Map<string, CryptoKey | KeyObject>();
  const privFor = (kid: string) => {
    let k = priv.get(kid);
    if (!k) {
      const j = job.privateKeys[kid];
      if (!j) throw new Error(`no private key for ${kid}`);
      k = "kty" in j ? createPrivateKey({ key: { kty: "EC", crv: "P-256", x: j.x, y: j.y, d: j.d }, format: "jwk" }) : j;
      priv.set(kid, k);
    }
    return k;
  };
  const pubFor = (kid: string) => {
    let k = pub.get(kid);
    if (!k) {
      const j = job.publicKeys[kid];
      if (!j) throw new Error(`no public key for ${kid}`);
      k = "kty" in j ? createPublicKey({ key: { kty: "EC", crv: "P-256", x: j.x, y: j.y }, format: "jwk" }) : j;
      pub.set(kid, k);
    }
    return k;
  };
  const out: Array<string | null> = [];
  for (const it of job.items) {
    let pt: Uint8Array;
    try {
      pt = await decryptEnvelope(it.jwe, { privateKey: privFor(it.fromKid), expectedCtx: it.ctx, expectedKid: it.fromKid, sliceSeconds: it.fromSliceSeconds });
    } catch {
      out.push(null);
      continue;
    }
    try {
      out.push(await encryptEnvelope(pt, { publicKey: pubFor(it.toKid), kid: it.toKid, ts: it.ts, ctx: it.ctx, sliceSeconds: job.toSliceSeconds }));
    } finally {
      zeroize(pt);
    }
  }
  return out;
}
