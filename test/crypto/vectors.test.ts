// Known-answer tests: our derivation (the portable one and the service's native one) against committed vectors, re-derived independently (WebCrypto
// HKDF/HMAC/SHA-256 and our own RFC 9380 expand_message_xmd; noble only for the public key, which the
// code computes with WebCrypto), plus RFC 5869 and RFC 7518 Appendix C.
import { describe, expect, test } from "bun:test";
import { p256 } from "@noble/curves/nist.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { compactDecrypt, importJWK } from "jose";
import { createECDH } from "node:crypto";
import {
  concatKdf,
  decryptEnvelopeToString,
  deriveCover,
  fromBase64url,
  fromHex,
  leafSeed,
  readEnvelopeHeader,
  rootSeed,
  sliceKeyFromLeaf,
  sliceScalar,
  toBase64url,
  toHex,
  utf8,
} from "../../src/crypto/index.ts";
import {
  childNative,
  leavesUnderNative,
  sliceScalarNative,
  slicePrivateJwksNative,
} from "../../src/crypto/slice-keys-native.ts";
import rfc from "../vectors/ecdh-es-rfc7518.json";
import v from "../vectors/slice-derivation.json";

const N = p256.Point.CURVE().n;

async function webHkdf(ikm: Uint8Array<ArrayBuffer>, salt: string, info: string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(
    await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: utf8(salt), info: utf8(info) }, k, 256),
  );
}

async function webHmac(key: Uint8Array<ArrayBuffer>, msg: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, msg));
}

async function webLeaf(root: Uint8Array<ArrayBuffer>, slice: number): Promise<Uint8Array<ArrayBuffer>> {
  let s = root;
  for (let level = 31; level >= 0; level--) s = await webHmac(s, Uint8Array.of(Math.floor(slice / 2 ** level) % 2));
  return s;
}

const sha = async (b: Uint8Array<ArrayBuffer>) => new Uint8Array(await crypto.subtle.digest("SHA-256", b));

// RFC 9380 §5.3.1 expand_message_xmd with SHA-256 (b = 32, r = 64), written out independently.
async function expandXmd(msg: Uint8Array, dst: Uint8Array, len: number): Promise<Uint8Array<ArrayBuffer>> {
  const ell = Math.ceil(len / 32);
  const dstPrime = new Uint8Array([...dst, dst.length]);
  const b0 = await sha(new Uint8Array([...new Uint8Array(64), ...msg, len >> 8, len & 255, 0, ...dstPrime]));
  const out: number[] = [];
  let prev = await sha(new Uint8Array([...b0, 1, ...dstPrime]));
  out.push(...prev);
  for (let i = 2; i <= ell; i++) {
    const x = b0.map((b, j) => b ^ prev[j]!);
    prev = await sha(new Uint8Array([...x, i, ...dstPrime]));
    out.push(...prev);
  }
  return new Uint8Array(out.slice(0, len));
}

async function independentScalar(leaf: Uint8Array): Promise<bigint> {
  // hash_to_field: L = ceil((ceil(log2 n) + k) / 8) = (256 + 128) / 8 = 48 bytes, then mod n.
  const u = await expandXmd(leaf, utf8(v.scalarDst), 48);
  return BigInt(`0x${toHex(u)}`) % N;
}

describe("slice derivation vectors", () => {
  const master = fromHex(v.masterScalarHex);
  const root = rootSeed(master);

  test("root seed matches the vector and WebCrypto HKDF", async () => {
    expect(toHex(root)).toBe(v.rootSeedHex);
    expect(toHex(await webHkdf(master, v.hkdfSalt, v.hkdfInfo))).toBe(v.rootSeedHex);
  });

  for (const s of v.slices) {
    test(`slice ${s.slice}: leaf, scalar, public key`, async () => {
      const leaf = leafSeed(root, s.slice);
      expect(toHex(leaf)).toBe(s.leafSeedHex);
      expect(toHex(await webLeaf(fromHex(v.rootSeedHex), s.slice))).toBe(s.leafSeedHex);

      expect(toHex(sliceScalar(leaf))).toBe(s.scalarHex);
      expect((await independentScalar(fromHex(s.leafSeedHex))).toString(16).padStart(64, "0")).toBe(s.scalarHex);

      const key = await sliceKeyFromLeaf(leaf, s.slice, v.version);
      expect(key.kid).toBe(s.kid);
      expect([key.publicJwk.x, key.publicJwk.y]).toEqual([s.x, s.y]);
      const pub = p256.getPublicKey(fromHex(s.scalarHex), false);
      expect([toBase64url(pub.subarray(1, 33)), toBase64url(pub.subarray(33))]).toEqual([s.x, s.y]);
      expect(key.privateJwk.d).toBe(toBase64url(fromHex(s.scalarHex)));
    });

    test(`slice ${s.slice}: the service's native derivation gives the same bytes`, () => {
      let leaf = fromHex(v.rootSeedHex);
      for (let level = 31; level >= 0; level--)
        leaf = childNative(leaf, (Math.floor(s.slice / 2 ** level) % 2) as 0 | 1);
      expect(toHex(leaf)).toBe(s.leafSeedHex);
      expect(toHex(sliceScalarNative(leaf))).toBe(s.scalarHex);
      const [jwk] = slicePrivateJwksNative([{ seed: leaf, kid: s.kid }]);
      expect(jwk).toEqual({
        kty: "EC",
        crv: "P-256",
        x: s.x,
        y: s.y,
        d: toBase64url(fromHex(s.scalarHex)),
        kid: s.kid,
        alg: "ECDH-ES",
        use: "enc",
      });
    });
  }

  test("cover seeds match the vector and the WebCrypto HMAC chain", async () => {
    const got = deriveCover(root, v.cover.from, v.cover.to).map((n) => ({
      depth: n.depth,
      index: n.index,
      seedHex: toHex(n.seed),
    }));
    expect(got).toEqual(v.cover.nodes);
    const nodes = v.cover.nodes.map((n) => ({ depth: n.depth, index: n.index, seed: fromHex(n.seedHex) }));
    const leaves = leavesUnderNative(nodes, 1 << 16);
    expect(leaves.map((l) => l.slice)).toEqual(
      Array.from({ length: v.cover.to - v.cover.from + 1 }, (_, i) => v.cover.from + i),
    );
    for (const l of leaves) expect(toHex(l.seed)).toBe(toHex(leafSeed(root, l.slice)));
    for (const n of v.cover.nodes) {
      let s = fromHex(v.rootSeedHex);
      for (let level = 1; level <= n.depth; level++)
        s = await webHmac(s, Uint8Array.of(Math.floor(n.index / 2 ** (n.depth - level)) % 2));
      expect(toHex(s)).toBe(n.seedHex);
    }
  });
});

describe("RFC 5869 HKDF", () => {
  test("test case 1 through the HKDF the GGM root uses", () => {
    const ikm = fromHex("0b".repeat(22));
    const salt = fromHex("000102030405060708090a0b0c");
    const info = fromHex("f0f1f2f3f4f5f6f7f8f9");
    expect(toHex(hkdf(sha256, ikm, salt, info, 42))).toBe(
      "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    );
  });
});

describe("RFC 7518 Appendix C ECDH-ES", () => {
  test("Z and the Concat KDF output match the RFC", () => {
    const bob = createECDH("prime256v1");
    bob.setPrivateKey(fromBase64url(rfc.bob.d));
    const alicePub = new Uint8Array([4, ...fromBase64url(rfc.alice.x), ...fromBase64url(rfc.alice.y)]);
    const z = new Uint8Array(bob.computeSecret(alicePub));
    expect([...z]).toEqual(rfc.zBytes);
    const key = concatKdf(
      z,
      rfc.keydatalen,
      rfc.header.enc,
      fromBase64url(rfc.header.apu),
      fromBase64url(rfc.header.apv),
    );
    expect(toBase64url(key)).toBe(rfc.derivedKey);
  });

  test("the committed envelope to Bob's key decrypts with our code and with jose", async () => {
    const e = rfc.envelope;
    expect(readEnvelopeHeader(e.jwe)).toEqual({ kid: e.kid, version: 1, slice: 493000, ts: e.ts, ctx: e.ctx });
    const privateJwk = { ...rfc.bob, kty: "EC" as const, crv: "P-256" as const };
    expect(
      await decryptEnvelopeToString(e.jwe, {
        privateKey: privateJwk,
        expectedCtx: e.ctx,
        expectedKid: e.kid,
        sliceSeconds: 3600,
      }),
    ).toBe(e.plaintext);
    const { plaintext } = await compactDecrypt(e.jwe, await importJWK(rfc.bob, "ECDH-ES"));
    expect(new TextDecoder().decode(plaintext)).toBe(e.plaintext);
  });
});
