/**
 * The slice derivation of ggm.ts and slice-keys.ts on native primitives, for the service's grants:
 * HMAC-SHA256 and SHA-256 from Bun's CryptoHasher (~1 µs per GGM step against ~15 µs in
 * @noble/hashes), the public point from node:crypto's ECDH (~4x cheaper than a WebCrypto PKCS#8
 * import and JWK export), all synchronous. Same bytes as the portable code, which
 * test/crypto/vectors.test.ts checks both against; that code stays the one the SDK loads, since the
 * SDK runs in browsers.
 */
import { type ECDH, createECDH } from "node:crypto";
import { bigIntToBytes, utf8, zeroize } from "./bytes.ts";
import { CryptoInputError } from "./errors.ts";
import { SEED_BYTES, TREE_DEPTH, type SeededNode } from "./ggm.ts";
import { type EcPrivateJwk, P256_ORDER } from "./jwk.ts";
import { SLICE_SCALAR_DST } from "./slice-keys.ts";

/**
 * GGM PRG step, as ggm.ts `child`: HMAC-SHA256(key = seed, msg = one byte b), RFC 2104 over two
 * SHA-256 calls: H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ b)), K zero-padded to the 64-byte block. Not Bun's
 * keyed CryptoHasher: it throws whatever error an earlier, unrelated BoringSSL call left behind on
 * the thread (a WebCrypto import of an off-curve point, e.g. a requester's bad publicKeyJwk), which
 * failed the next grant.
 */
export function childNative(seed: Uint8Array, bit: 0 | 1): Uint8Array<ArrayBuffer> {
  if (seed.length !== SEED_BYTES) throw new CryptoInputError("GGM seeds are 32 bytes");
  for (let i = 0; i < SEED_BYTES; i++) {
    INNER[i] = seed[i]! ^ 0x36;
    OUTER[i] = seed[i]! ^ 0x5c;
  }
  INNER[BLOCK] = bit;
  Bun.SHA256.hash(INNER, OUTER_TAIL);
  const out = new Uint8Array(SEED_BYTES);
  Bun.SHA256.hash(OUTER, out);
  // Scratch holds key-derived bytes: back to the pads.
  INNER.fill(0x36, 0, SEED_BYTES);
  OUTER.fill(0x5c, 0, SEED_BYTES);
  OUTER_TAIL.fill(0);
  return out;
}

const BLOCK = 64;
/** (K ⊕ ipad) ‖ b, and (K ⊕ opad) ‖ inner hash; bytes 32..63 of each pad are the zero padding's. */
const INNER = new Uint8Array(BLOCK + 1).fill(0x36, 0, BLOCK);
const OUTER = new Uint8Array(BLOCK + 32).fill(0x5c, 0, BLOCK);
const OUTER_TAIL = OUTER.subarray(BLOCK);

// RFC 9380 §5.3.1 expand_message_xmd(SHA-256), len_in_bytes = 48: b0 = H(Z_pad ‖ msg ‖ I2OSP(48, 2)
// ‖ 0x00 ‖ DST'), b1 = H(b0 ‖ 0x01 ‖ DST'), b2 = H((b0 ⊕ b1) ‖ 0x02 ‖ DST'), output b1 ‖ b2[0..16].
const DST_PRIME = (() => {
  const dst = utf8(SLICE_SCALAR_DST);
  const out = new Uint8Array(dst.length + 1);
  out.set(dst);
  out[dst.length] = dst.length;
  return out;
})();
const UNIFORM_BYTES = 48;
const MSG_AT = 64;
// Scratch for the three hashes, zeroed after each use (all of it is synchronous).
const FIRST = new Uint8Array(MSG_AT + SEED_BYTES + 3 + DST_PRIME.length);
FIRST[MSG_AT + SEED_BYTES + 1] = UNIFORM_BYTES;
FIRST.set(DST_PRIME, MSG_AT + SEED_BYTES + 3);
const NEXT = new Uint8Array(32 + 1 + DST_PRIME.length);
NEXT.set(DST_PRIME, 33);
const B0 = new Uint8Array(32);
const UNIFORM = new Uint8Array(64);
const UNIFORM_HEAD = UNIFORM.subarray(0, 32);
const UNIFORM_TAIL = UNIFORM.subarray(32);
const UNIFORM_VIEW = Buffer.from(UNIFORM.buffer, 0, UNIFORM_BYTES);

/** The slice private scalar as 64 lowercase hex digits (what the JWK and ECDH take). */
function sliceScalarHex(leafSeed: Uint8Array): string {
  if (leafSeed.length !== SEED_BYTES) throw new CryptoInputError("leaf seed must be 32 bytes");
  FIRST.set(leafSeed, MSG_AT);
  Bun.SHA256.hash(FIRST, B0);
  NEXT.set(B0);
  NEXT[32] = 1;
  Bun.SHA256.hash(NEXT, UNIFORM_HEAD);
  for (let i = 0; i < 32; i++) NEXT[i] = B0[i]! ^ UNIFORM[i]!;
  NEXT[32] = 2;
  Bun.SHA256.hash(NEXT, UNIFORM_TAIL);
  const s = BigInt(`0x${UNIFORM_VIEW.toString("hex")}`) % P256_ORDER;
  FIRST.fill(0, MSG_AT, MSG_AT + SEED_BYTES);
  for (const b of [B0, UNIFORM]) zeroize(b);
  NEXT.fill(0, 0, 33);
  // Probability 2^-256; refusing is still better than a zero key.
  if (s === 0n) throw new CryptoInputError("leaf seed maps to the zero scalar");
  return s.toString(16).padStart(64, "0");
}

/** As slice-keys.ts `sliceScalar`: the 32-byte big-endian slice private scalar, uniform in [1, n). */
export function sliceScalarNative(leafSeed: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(32);
  Buffer.from(out.buffer).write(sliceScalarHex(leafSeed), "hex");
  return out;
}

/**
 * Private JWKs (kid, alg "ECDH-ES", use "enc"; members in the order slice-keys.ts gives them) of
 * the leaf seeds, in order. Does not consume or zero the seeds.
 */
export function slicePrivateJwksNative(leaves: Array<{ seed: Uint8Array; kid: string }>): EcPrivateJwk[] {
  if (leaves.length === 0) return [];
  const ecdh: ECDH = createECDH("prime256v1");
  const out: EcPrivateJwk[] = [];
  try {
    for (const { seed, kid } of leaves) {
      // Hex and base64url strings of d cannot be zeroed, but the JWK carries d as a string anyway.
      const d = sliceScalarHex(seed);
      ecdh.setPrivateKey(d, "hex");
      const p = ecdh.getPublicKey();
      if (p.length !== 65 || p[0] !== 4) throw new Error("node:crypto gave a malformed P-256 point");
      const dBytes = Buffer.from(d, "hex");
      out.push({
        kty: "EC",
        crv: "P-256",
        x: p.toString("base64url", 1, 33),
        y: p.toString("base64url", 33, 65),
        d: dBytes.toString("base64url"),
        kid,
        alg: "ECDH-ES",
        use: "enc",
      });
      dBytes.fill(0);
    }
  } finally {
    // The object keeps the last scalar in native memory until collected: overwrite it with 1.
    ecdh.setPrivateKey(ONE);
  }
  return out;
}

const ONE = bigIntToBytes(1n, 32);

/**
 * Leaf seeds of every slice under the given subtree nodes, left to right, each interior node
 * derived once (2 HMACs per leaf). The caller owns (and zeroes) the yielded seeds, not the nodes'.
 */
export function leavesUnderNative(
  nodes: readonly SeededNode[],
  maxLeaves: number,
): Array<{ slice: number; seed: Uint8Array }> {
  let total = 0;
  for (const n of nodes) total += 2 ** (TREE_DEPTH - n.depth);
  if (total > maxLeaves) throw new CryptoInputError(`the nodes hold ${total} leaves, more than ${maxLeaves}`);
  const out: Array<{ slice: number; seed: Uint8Array }> = [];
  const walk = (seed: Uint8Array, depth: number, index: number, owned: boolean): void => {
    if (depth === TREE_DEPTH) {
      out.push({ slice: index, seed: owned ? seed : seed.slice() });
      return;
    }
    walk(childNative(seed, 0), depth + 1, index * 2, true);
    walk(childNative(seed, 1), depth + 1, index * 2 + 1, true);
    if (owned) zeroize(seed);
  };
  for (const n of nodes) walk(n.seed, n.depth, n.index, false);
  return out;
}
