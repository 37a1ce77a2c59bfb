/** What time-slice grants release, and a trial of all of it against one stored token value (key-separation tests). */
import { compactDecrypt } from "jose";
import {
  decryptEnvelope,
  fromBase64url,
  leavesInRange,
  openTokenEnvelope,
  sliceKeyFromLeaf,
  type EcPrivateJwk,
} from "../../src/crypto/index.ts";

export interface Grant {
  keyVersion: number;
  slices: { from: number; to: number };
  keys: Array<{ slice: number; kid: string; privateJwk: EcPrivateJwk }>;
  seeds: Array<{ depth: number; index: number; seed: string }>;
}

/** Everything a grant releases, as raw 32-byte secrets and as slice private JWKs. */
export async function releasedMaterial(grants: Grant[]): Promise<{ jwks: EcPrivateJwk[]; secrets: Uint8Array[] }> {
  const jwks: EcPrivateJwk[] = [];
  const secrets: Uint8Array[] = [];
  for (const g of grants) {
    for (const k of g.keys) {
      jwks.push(k.privateJwk);
      secrets.push(fromBase64url(k.privateJwk.d));
    }
    for (const s of g.seeds) {
      const seed = fromBase64url(s.seed);
      secrets.push(seed);
      const size = 2 ** (32 - s.depth);
      const from = Math.max(s.index * size, g.slices.from);
      const to = Math.min(s.index * size + size - 1, g.slices.to);
      for (const { slice, seed: leaf } of leavesInRange(seed, from, to, { depth: s.depth, index: s.index })) {
        secrets.push(leaf);
        jwks.push((await sliceKeyFromLeaf(leaf, slice, g.keyVersion)).privateJwk);
      }
    }
  }
  return { jwks, secrets };
}

/** Tries every released key on one stored value: as an ECDH-ES slice key, as a token root, as a `dir` key. */
export async function opens(jwe: string, m: { jwks: EcPrivateJwk[]; secrets: Uint8Array[] }): Promise<number> {
  let n = 0;
  const header = JSON.parse(Buffer.from(jwe.split(".")[0]!, "base64url").toString()) as { ctx: string; kid: string };
  const version = Number(String(header.kid).replace(/^tok:/, "").split(":")[0]);
  for (const jwk of m.jwks) {
    if (
      await decryptEnvelope(jwe, { privateKey: jwk, expectedCtx: header.ctx }).then(
        () => true,
        () => false,
      )
    )
      n++;
    if (
      await compactDecrypt(jwe, { ...jwk, ext: true } as JsonWebKey).then(
        () => true,
        () => false,
      )
    )
      n++;
  }
  for (const s of m.secrets) {
    if (s.length !== 32) continue;
    try {
      openTokenEnvelope(jwe, { root: s, version, expectedCtx: header.ctx });
      n++;
    } catch {}
    if (
      await compactDecrypt(jwe, s).then(
        () => true,
        () => false,
      )
    )
      n++;
  }
  return n;
}
