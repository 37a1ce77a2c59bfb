// Signed slice keys and generic ES256 payloads; slice index arithmetic; the deriver's cache; and the
// master scalar not being recoverable from slice scalars by obvious relations.
import { describe, expect, test } from "bun:test";
import { CompactSign, importJWK } from "jose";
import { CryptoInputError, SignatureVerificationError } from "../../src/crypto/errors.ts";
import {
  LruCache,
  SliceKeyDeriver,
  bytesToBigIntForTest,
  fromBase64url,
  fromHex,
  generateMasterKeyPair,
  leafSeed,
  masterScalar,
  rootSeed,
  signPayload,
  signSliceKey,
  sliceIndex,
  sliceRange,
  sliceScalar,
  toBase64url,
  toHex,
  utf8,
  verifyPayload,
  verifySliceKey,
} from "./helpers.ts";

describe("signed slice keys", async () => {
  const master = await generateMasterKeyPair({ kid: "2" });
  const deriver = new SliceKeyDeriver({
    masterScalar: masterScalar(master.privateJwk),
    version: 2,
    sliceSeconds: 3600,
  });
  const k = await deriver.get(493000);
  const iat = 493000 * 3600_000 + 5;

  test("sign → verify gives the statement; no private member anywhere", async () => {
    const jws = await signSliceKey(k.publicJwk, master.privateJwk, { sliceSeconds: 3600, iat });
    expect(jws).not.toContain(k.privateJwk.d);
    const s = await verifySliceKey(jws, master.publicJwk, { version: 2, slice: 493000, sliceSeconds: 3600 });
    expect(s).toEqual({
      keyVersion: 2,
      slice: 493000,
      sliceSeconds: 3600,
      startMs: 493000 * 3600_000,
      endMs: 493001 * 3600_000,
      jwk: { kty: "EC", crv: "P-256", x: k.publicJwk.x, y: k.publicJwk.y, kid: "2:493000", alg: "ECDH-ES", use: "enc" },
      status: "active",
      iat,
      exp: iat + 3600_000,
    });
    const header = JSON.parse(new TextDecoder().decode(fromBase64url(jws.split(".")[0]!)));
    expect(header).toEqual({ alg: "ES256", kid: "2", typ: "chronokms-slice-key+json" });
    // Payload is canonical JSON (sorted keys, no whitespace).
    expect(new TextDecoder().decode(fromBase64url(jws.split(".")[1]!))).toStartWith('{"endMs":');
  });

  test("tampered, wrong key, wrong expectations, or self-inconsistent statements fail", async () => {
    const jws = await signSliceKey(k.publicJwk, master.privateJwk, { sliceSeconds: 3600, iat });
    const [h, p, s] = jws.split(".") as [string, string, string];
    const other = await generateMasterKeyPair();
    const fails = async (promise: Promise<unknown>) =>
      expect(promise).rejects.toBeInstanceOf(SignatureVerificationError);
    const payload = JSON.parse(new TextDecoder().decode(fromBase64url(p)));
    await fails(
      verifySliceKey(`${h}.${toBase64url(utf8(JSON.stringify({ ...payload, slice: 493001 })))}.${s}`, master.publicJwk),
    );
    const sig = fromBase64url(s);
    sig[5]! ^= 1;
    await fails(verifySliceKey(`${h}.${p}.${toBase64url(sig)}`, master.publicJwk));
    await fails(verifySliceKey(jws, other.publicJwk));
    await fails(verifySliceKey(jws, master.publicJwk, { slice: 493001 }));
    await fails(verifySliceKey(jws, master.publicJwk, { version: 3 }));
    await fails(verifySliceKey(jws, master.publicJwk, { sliceSeconds: 60 }));
    // Validly signed by the master but internally inconsistent (endMs off by one): still refused.
    const signer = await importJWK(master.privateJwk, "ES256");
    const forge = async (body: object, hdr: object = { alg: "ES256", kid: "2", typ: "chronokms-slice-key+json" }) =>
      new CompactSign(utf8(JSON.stringify(body))).setProtectedHeader(hdr as { alg: string }).sign(signer);
    await fails(verifySliceKey(await forge({ ...payload, endMs: payload.endMs + 1 }), master.publicJwk));
    await fails(verifySliceKey(await forge({ ...payload, jwk: { ...payload.jwk, kid: "2:5" } }), master.publicJwk));
    await fails(
      verifySliceKey(await forge({ ...payload, jwk: { ...payload.jwk, d: k.privateJwk.d } }), master.publicJwk),
    );
    await fails(
      verifySliceKey(
        await forge(payload, { alg: "ES256", kid: "3", typ: "chronokms-slice-key+json" }),
        master.publicJwk,
      ),
    );
    await fails(verifySliceKey(await forge(payload, { alg: "ES256", kid: "2", typ: "JWT" }), master.publicJwk));
    expect(await verifySliceKey(await forge(payload), master.publicJwk)).toEqual(payload);
  });

  test("(v2) validity: an expired statement, one issued in the future, one without iat/exp (v1) and one with a duplicate member are refused", async () => {
    const jws = await signSliceKey(k.publicJwk, master.privateJwk, { sliceSeconds: 3600, iat, ttlMs: 60_000 });
    expect((await verifySliceKey(jws, master.publicJwk, { now: iat + 59_999 })).exp).toBe(iat + 60_000);
    await expect(verifySliceKey(jws, master.publicJwk, { now: iat + 60_000 })).rejects.toThrow(/expired at/);
    // Issued more than the allowed clock skew after the verifier's now.
    await expect(verifySliceKey(jws, master.publicJwk, { now: iat - 6 * 60_000 })).rejects.toThrow(
      /issued in the future/,
    );
    expect((await verifySliceKey(jws, master.publicJwk, { now: iat - 4 * 60_000 })).iat).toBe(iat);
    const payload = JSON.parse(new TextDecoder().decode(fromBase64url(jws.split(".")[1]!)));
    const signer = await importJWK(master.privateJwk, "ES256");
    const sign = (body: string, hdr = '{"alg":"ES256","kid":"2","typ":"chronokms-slice-key+json"}') =>
      new CompactSign(utf8(body))
        .setProtectedHeader(JSON.parse(hdr))
        .sign(signer)
        .then((j) => `${toBase64url(utf8(hdr))}.${j.split(".").slice(1).join(".")}`);
    const { iat: _i, exp: _e, status: _s, ...v1 } = payload;
    await expect(verifySliceKey(await sign(JSON.stringify(v1)), master.publicJwk)).rejects.toBeInstanceOf(
      SignatureVerificationError,
    );
    await expect(
      verifySliceKey(await sign(JSON.stringify({ ...payload, exp: iat })), master.publicJwk),
    ).rejects.toBeInstanceOf(SignatureVerificationError);
    await expect(
      verifySliceKey(await sign(JSON.stringify({ ...payload, status: "retired" })), master.publicJwk),
    ).rejects.toBeInstanceOf(SignatureVerificationError);
    // A duplicate payload member ("slice" twice; JSON.parse would keep the last) or header member.
    const dup = JSON.stringify(payload).replace('"slice":493000', '"slice":493000,"slice":493001');
    await expect(verifySliceKey(await sign(dup), master.publicJwk)).rejects.toBeInstanceOf(SignatureVerificationError);
    await expect(
      verifySliceKey(
        await sign(JSON.stringify(payload), '{"alg":"ES256","kid":"2","kid":"2","typ":"chronokms-slice-key+json"}'),
        master.publicJwk,
      ),
    ).rejects.toBeInstanceOf(SignatureVerificationError);
    expect((await verifySliceKey(await sign(JSON.stringify(payload)), master.publicJwk)).slice).toBe(493000);
  });

  test("generic payload signing (audit checkpoints)", async () => {
    const jws = await signPayload({ b: 2, a: [1, "x"], head: "ab" }, master.privateJwk, {
      kid: "2",
      typ: "chronokms-audit-checkpoint+json",
    });
    expect(new TextDecoder().decode(fromBase64url(jws.split(".")[1]!))).toBe('{"a":[1,"x"],"b":2,"head":"ab"}');
    expect(
      (await verifyPayload(jws, master.publicJwk, { typ: "chronokms-audit-checkpoint+json", kid: "2" })).payload,
    ).toEqual({ a: [1, "x"], b: 2, head: "ab" });
    await expect(verifyPayload(jws, master.publicJwk, { typ: "other" })).rejects.toBeInstanceOf(
      SignatureVerificationError,
    );
    await expect(verifyPayload(`${jws.slice(0, -3)}AAA`, master.publicJwk)).rejects.toBeInstanceOf(
      SignatureVerificationError,
    );
  });
});

describe("slice arithmetic", () => {
  test("sliceIndex at slice boundaries, including the last slice 2^32-1", () => {
    expect(sliceIndex(0, 3600)).toBe(0);
    expect(sliceIndex(3_599_999, 3600)).toBe(0);
    expect(sliceIndex(3_600_000, 3600)).toBe(1);
    // With 1-second slices the last slice is within safe-integer milliseconds (with 3600 s it is not).
    const e = 2 ** 32 - 1;
    const { startMs, endMs } = sliceRange(e, 1);
    expect(sliceIndex(startMs, 1)).toBe(e);
    expect(sliceIndex(startMs - 1, 1)).toBe(e - 1);
    expect(sliceIndex(endMs - 1, 1)).toBe(e);
    expect(() => sliceIndex(endMs, 1)).toThrow(CryptoInputError);
    expect(() => sliceRange(e, 3600)).toThrow(CryptoInputError);
    expect(sliceIndex(8.64e15, 3600)).toBe(2_400_000_000); // the last Date, well below 2^32
    for (let s = 1; s < 5000; s += 37) {
      const b = sliceRange(1_000_000 + s, s);
      expect(sliceIndex(b.startMs - 1, s)).toBe(1_000_000 + s - 1);
      expect(sliceIndex(b.startMs, s)).toBe(1_000_000 + s);
    }
  });

  test("sliceIndex/sliceRange reject bad input with CryptoInputError", () => {
    for (const [t, s] of [
      [-1, 3600],
      [1.5, 3600],
      [Number.NaN, 3600],
      [Infinity, 3600],
      [0, 0],
      [0, -1],
      [0, 1.5],
      [2 ** 53, 1],
    ] as const) {
      expect(() => sliceIndex(t, s)).toThrow(CryptoInputError);
    }
    expect(() => sliceRange(2 ** 32, 3600)).toThrow(CryptoInputError);
    expect(() => sliceRange(-1, 3600)).toThrow(CryptoInputError);
  });
});

describe("SliceKeyDeriver", () => {
  const scalar = fromHex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");

  test("cached lookups return the same objects; range() equals get() per slice", async () => {
    const d = new SliceKeyDeriver({ masterScalar: scalar, version: 1, sliceSeconds: 3600, cacheSize: 100 });
    const [a, b] = await Promise.all([d.get(5), d.get(5)]);
    expect(a).toBe(b);
    expect(await d.forTime(5 * 3_600_000 + 17)).toBe(a);
    const fresh = new SliceKeyDeriver({ masterScalar: scalar, version: 1, sliceSeconds: 3600, cacheSize: 100 });
    await fresh.get(10);
    const range = await fresh.range(3, 40);
    expect(range.map((k) => k.slice)).toEqual(Array.from({ length: 38 }, (_, i) => 3 + i));
    for (const k of range) expect(k.publicJwk).toEqual((await d.get(k.slice)).publicJwk);
    d.destroy();
    expect(() => d.get(6)).toThrow();
  });

  test("LruCache evicts the least recently used", () => {
    const evicted: number[] = [];
    const c = new LruCache<number, string>(2, (k) => evicted.push(k));
    c.set(1, "a").set(2, "b");
    c.get(1);
    c.set(3, "c");
    expect([c.has(1), c.has(2), c.has(3), evicted]).toEqual([true, false, true, [2]]);
  });

  test("a full large LruCache evicts its least recently used in batches and stays within bounds", () => {
    const evicted: number[] = [];
    const c = new LruCache<number, number>(4096, (k) => evicted.push(k));
    for (let k = 0; k < 10_000; k++) {
      c.set(k, k);
      c.get(0); // kept recent throughout
      expect(c.size).toBeLessThanOrEqual(4096);
    }
    expect(c.size).toBeGreaterThanOrEqual(4096 - 64);
    expect(c.has(0) && c.has(9999)).toBe(true);
    // Evicted oldest first, each once, and exactly what is no longer held.
    expect(evicted).toEqual(Array.from({ length: evicted.length }, (_, i) => i + 1));
    expect(evicted.length + c.size).toBe(10_000);
  });
});

describe("the master scalar is not recoverable by obvious relations", () => {
  const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
  const m = fromHex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");
  const M = bytesToBigIntForTest(m);
  const root = rootSeed(m);
  const s = (e: number) => bytesToBigIntForTest(sliceScalar(leafSeed(root, e)));

  test("root seed ≠ master scalar, slice scalars ≠ master, sums/xors/differences show no structure", () => {
    expect(toHex(root)).not.toBe(toHex(m));
    const diffs = new Set<bigint>();
    for (const e of [0, 1, 2, 1000, 493000, 2 ** 31, 2 ** 32 - 2]) {
      const a = s(e);
      const b = s(e + 1);
      expect(a).not.toBe(M);
      expect((a + b) % n).not.toBe(M);
      expect(a ^ b).not.toBe(M);
      expect((((b - a) % n) + n) % n).not.toBe(M);
      expect((a * b) % n).not.toBe(M);
      diffs.add((((b - a) % n) + n) % n);
    }
    expect(diffs.size).toBe(7); // s_{e+1} − s_e is not constant
  });
});
