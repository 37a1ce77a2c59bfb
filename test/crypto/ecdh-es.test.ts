// The one ECDH-ES + A256GCM implementation (src/crypto/ecdh-es.ts, WebCrypto), generic over the
// header: what it seals jose opens and the other way round, for any caller's members (a sealed
// grant's here; the time-slice envelope has its own suite in envelope.test.ts); the caller's check
// runs before any key agreement; every failure to open is the one DecryptionFailedError.
import { beforeAll, expect, test } from "bun:test";
import { CompactEncrypt, compactDecrypt } from "jose";
import { fromBase64url, toBase64url, utf8, utf8Decode } from "../../src/crypto/bytes.ts";
import { openEcdhEs, readProtectedHeader, sealEcdhEs } from "../../src/crypto/ecdh-es.ts";
import { CryptoInputError, DecryptionFailedError } from "../../src/crypto/errors.ts";
import { encryptEnvelope } from "../../src/crypto/envelope.ts";
import { generateMasterKeyPair, masterScalar } from "../../src/crypto/master-key.ts";
import { type SliceKey, SliceKeyDeriver, sliceRange } from "../../src/crypto/slice-keys.ts";

const SLICE_SECONDS = 3600;
const SLICE = 493_000;
const ts = sliceRange(SLICE, SLICE_SECONDS).startMs + 1234;
const ctx = "sensor:7";
/** The members a sealed grant carries (src/access/grants.ts). */
const GRANT = { typ: "chronokms-grant+jwe", cty: "json", gid: "g-1", ver: 3, slices: { from: 4, to: 9 } };
let key: SliceKey;
let other: SliceKey;

beforeAll(async () => {
  const pair = await generateMasterKeyPair();
  const deriver = new SliceKeyDeriver({
    masterScalar: masterScalar(pair.privateJwk),
    version: 3,
    sliceSeconds: SLICE_SECONDS,
  });
  key = await deriver.get(SLICE);
  other = await deriver.get(SLICE + 1);
});

/** `parts` with part `i` replaced, joined back into a compact JWE. */
const withPart = (parts: string[], i: number, v: string) => parts.map((p, j) => (j === i ? v : p)).join(".");

const fails = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DecryptionFailedError);
  expect((err as Error).message).toBe("decryption failed");
};

test("seals any caller's members as { alg, enc, ...members, epk }; jose opens it; we open it with JWK or CryptoKey", async () => {
  for (const recipient of [key.publicJwk, key.publicKey]) {
    const jwe = await sealEcdhEs('{"keys":[]}', recipient, GRANT);
    const text = utf8Decode(fromBase64url(jwe.split(".")[0]!));
    expect(Object.keys(JSON.parse(text))).toEqual(["alg", "enc", "typ", "cty", "gid", "ver", "slices", "epk"]);
    expect(jwe.split(".")[1]).toBe("");
    const byJose = await compactDecrypt(jwe, key.privateKey);
    expect(utf8Decode(byJose.plaintext)).toBe('{"keys":[]}');
    expect(byJose.protectedHeader).toMatchObject(GRANT);
    for (const privateKey of [key.privateJwk, key.privateKey]) {
      const { plaintext, header } = await openEcdhEs(jwe, privateKey);
      expect(utf8Decode(plaintext)).toBe('{"keys":[]}');
      expect(header).toEqual(JSON.parse(text));
    }
  }
  const bin = crypto.getRandomValues(new Uint8Array(1000));
  expect((await openEcdhEs(await sealEcdhEs(bin, key.publicKey, {}), key.privateKey)).plaintext).toEqual(bin);
});

test("opens what jose seals, with and without apu/apv (the general Concat KDF)", async () => {
  const header = { alg: "ECDH-ES", enc: "A256GCM", ...GRANT } as const;
  const plain = await new CompactEncrypt(utf8("jose")).setProtectedHeader(header).encrypt(key.publicKey);
  const withApu = await new CompactEncrypt(utf8("jose"))
    .setProtectedHeader(header)
    .setKeyManagementParameters({ apu: utf8("alice"), apv: utf8("bob") })
    .encrypt(key.publicKey);
  expect(readProtectedHeader(withApu.split(".")[0]!).apu).toEqual(utf8("alice"));
  for (const jwe of [plain, withApu])
    expect(utf8Decode((await openEcdhEs(jwe, key.privateJwk)).plaintext)).toBe("jose");
});

test("the caller's check sees the members before any key agreement and refuses with the one error", async () => {
  const jwe = await sealEcdhEs("secret", key.publicKey, GRANT);
  const seen: unknown[] = [];
  // A wrong private key would fail the tag: the check runs first, so its refusal is what stops this.
  await fails(
    openEcdhEs(jwe, other.privateKey, (m) => {
      seen.push(m.gid);
      throw new Error("not my grant");
    }),
  );
  expect(seen).toEqual(["g-1"]);
  const caught = await openEcdhEs(jwe, key.privateKey, (m) => {
    if (m.gid !== "g-2") throw new Error("gid");
  }).catch((e: unknown) => e);
  expect((caught as Error).cause).toEqual(new Error("gid"));
});

test("wrong key, any edited part, crit, zip, other alg/enc, duplicate or off-curve members: the one DecryptionFailedError", async () => {
  const jwe = await sealEcdhEs("secret", key.publicJwk, GRANT);
  await fails(openEcdhEs(jwe, other.privateJwk));
  const parts = jwe.split(".");
  for (const i of [0, 2, 3, 4]) {
    const bytes = fromBase64url(parts[i]!);
    bytes[0]! ^= 1;
    await fails(openEcdhEs(withPart(parts, i, toBase64url(bytes)), key.privateJwk));
  }
  await fails(openEcdhEs(withPart(parts, 1, "AAAA"), key.privateJwk));
  await fails(openEcdhEs("not a jwe", key.privateJwk));
  const h = JSON.parse(utf8Decode(fromBase64url(parts[0]!)));
  const reheader = (text: string) => withPart(parts, 0, toBase64url(utf8(text)));
  for (const edit of [
    { crit: ["gid"] },
    { zip: "DEF" },
    { alg: "ECDH-ES+A256KW" },
    { enc: "A128GCM" },
    { apu: 7 },
    // An ephemeral key that is not on P-256 (an invalid-curve attack) is refused, not used.
    { epk: { ...h.epk, y: toBase64url(new Uint8Array(32).fill(7)) } },
    { epk: { ...h.epk, y: h.epk.x } },
    { epk: { ...h.epk, crv: "P-384" } },
  ]) {
    await fails(openEcdhEs(reheader(JSON.stringify({ ...h, ...edit })), key.privateJwk));
  }
  await fails(openEcdhEs(reheader(`${JSON.stringify(h).slice(0, -1)},"gid":"g-2"}`), key.privateJwk));
});

test("the sealer refuses members it sets or cannot honour; the time-slice envelope's bad input is a CryptoInputError", async () => {
  for (const bad of [{ alg: "dir" }, { enc: "A128GCM" }, { epk: {} }, { crit: [] }, { zip: "DEF" }])
    await expect(sealEcdhEs("x", key.publicJwk, bad)).rejects.toBeInstanceOf(TypeError);
  const base = { publicKey: key.publicJwk, kid: key.kid, ts, ctx };
  for (const bad of [{ ctx: "" }, { ctx: "x".repeat(1025) }, { kid: "nope" }, { ts: -1 }, { sliceSeconds: 60 }])
    await expect(encryptEnvelope("x", { ...base, ...bad })).rejects.toBeInstanceOf(CryptoInputError);
});
