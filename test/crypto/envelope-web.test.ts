// The WebCrypto envelope (the SDK's, so it runs in browsers) against the node:crypto one (the
// service's) and jose: each opens what the others seal, and every failure is the one
// DecryptionFailedError; bad input to encrypt is a CryptoInputError.
import { beforeAll, expect, test } from "bun:test";
import { CompactEncrypt, compactDecrypt } from "jose";
import { CryptoInputError, DecryptionFailedError } from "../../src/crypto/errors.ts";
import * as node from "../../src/crypto/envelope.ts";
import * as web from "../../src/crypto/envelope-web.ts";
import { generateMasterKeyPair, masterScalar } from "../../src/crypto/master-key.ts";
import { type SliceKey, SliceKeyDeriver, sliceRange } from "../../src/crypto/slice-keys.ts";
import { fromBase64url, toBase64url, utf8, utf8Decode } from "../../src/crypto/bytes.ts";

const SLICE_SECONDS = 3600;
const SLICE = 493_000;
const ts = sliceRange(SLICE, SLICE_SECONDS).startMs + 1234;
const ctx = "sensor:7";
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

test("web seals, node and jose open; node seals, web opens (JWK and CryptoKey keys)", async () => {
  const opts = { kid: key.kid, ts, ctx, sliceSeconds: SLICE_SECONDS };
  const fromWeb = await web.encryptEnvelope("from the browser", { ...opts, publicKey: key.publicJwk });
  expect(web.readEnvelopeHeader(fromWeb)).toEqual({ kid: key.kid, version: 3, slice: SLICE, ts, ctx });
  const open = { expectedCtx: ctx, expectedKid: key.kid, sliceSeconds: SLICE_SECONDS };
  expect(utf8Decode(await node.decryptEnvelope(fromWeb, { ...open, privateKey: key.privateJwk }))).toBe(
    "from the browser",
  );
  expect(utf8Decode((await compactDecrypt(fromWeb, key.privateKey)).plaintext)).toBe("from the browser");
  const fromNode = await node.encryptEnvelope("from the service", { ...opts, publicKey: key.publicJwk });
  for (const privateKey of [key.privateJwk, key.privateKey])
    expect(utf8Decode(await web.decryptEnvelope(fromNode, { ...open, privateKey }))).toBe("from the service");
  const withKey = await web.encryptEnvelope(utf8("bytes"), { ...opts, publicKey: key.publicKey });
  expect(utf8Decode(await web.decryptEnvelope(withKey, { ...open, privateKey: key.privateKey }))).toBe("bytes");
});

test("web opens a jose-sealed envelope with apu/apv (the general Concat KDF)", async () => {
  const header = { alg: "ECDH-ES", enc: "A256GCM", kid: key.kid, ts, ctx } as const;
  const jwe = await new CompactEncrypt(utf8("jose"))
    .setProtectedHeader(header)
    .setKeyManagementParameters({ apu: utf8("alice"), apv: utf8("bob") })
    .encrypt(key.publicKey);
  expect(utf8Decode(await web.decryptEnvelope(jwe, { expectedCtx: ctx, privateKey: key.privateJwk }))).toBe("jose");
});

test("wrong ctx, kid, slice key or any edited part: the one DecryptionFailedError", async () => {
  const jwe = await web.encryptEnvelope("secret", { publicKey: key.publicJwk, kid: key.kid, ts, ctx });
  const open = { expectedCtx: ctx, privateKey: key.privateJwk };
  await fails(web.decryptEnvelope(jwe, { ...open, expectedCtx: "sensor:8" }));
  await fails(web.decryptEnvelope(jwe, { ...open, expectedKid: other.kid }));
  await fails(web.decryptEnvelope(jwe, { ...open, privateKey: other.privateJwk }));
  await fails(web.decryptEnvelope(jwe, { ...open, sliceSeconds: 60 }));
  const parts = jwe.split(".");
  for (const i of [0, 2, 3, 4]) {
    const bytes = fromBase64url(parts[i]!);
    bytes[0]! ^= 1;
    const edited = withPart(parts, i, toBase64url(bytes));
    await fails(web.decryptEnvelope(edited, open));
  }
  await fails(web.decryptEnvelope(withPart(parts, 1, "AAAA"), open));
  await fails(web.decryptEnvelope("not a jwe", open));
  // An ephemeral key that is not on P-256 (an invalid-curve attack) is refused, not used.
  const h = JSON.parse(utf8Decode(fromBase64url(parts[0]!)));
  h.epk.y = toBase64url(new Uint8Array(32).fill(7));
  await fails(web.decryptEnvelope(withPart(parts, 0, toBase64url(utf8(JSON.stringify(h)))), open));
});

test("bad input to encrypt is a CryptoInputError", async () => {
  const base = { publicKey: key.publicJwk, kid: key.kid, ts, ctx };
  for (const bad of [{ ctx: "" }, { ctx: "x".repeat(1025) }, { kid: "nope" }, { ts: -1 }, { sliceSeconds: 60 }])
    await expect(web.encryptEnvelope("x", { ...base, ...bad })).rejects.toBeInstanceOf(CryptoInputError);
});
