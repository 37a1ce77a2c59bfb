/**
 * Writes test/vectors/token-dek.json: known answers pinning the key-domain split and the token DEK
 * derivation (SPEC v2 §4). Run once (`bun test/vectors/generate-token.ts`); the test recomputes every
 * value independently (WebCrypto HKDF, jose) and compares.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fromHex, rootSeed, sealTokenEnvelope, toBase64url, toHex, tokenContext, tokenDek, tokenRoot } from "../../src/crypto/index.ts";

const masterScalarHex = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"; // RFC 6979 A.2.5 P-256 private key
const scalar = fromHex(masterScalarHex);
const salt = fromHex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
const iv = fromHex("cafebabefacedbaddecaf888");
const cases = [
  { integration: "gmail", userId: "alice", field: "access" as const, rowVersion: 1 },
  { integration: "a", userId: "b:c", field: "refresh" as const, rowVersion: 7 },
  { integration: "a:b", userId: "c", field: "refresh" as const, rowVersion: 7 },
  { integration: "slack", userId: 'zoë "日本"', field: "access" as const, rowVersion: 42 },
];
const root = tokenRoot(scalar);
const out = {
  description: "chronokms key domains and token DEKs: tokenRoot = HKDF-SHA256(ikm = master scalar, salt = 'chronokms/v2/key-domains', info = 'chronokms/v2/token-root', L = 32); timesliceRoot = the v1 GGM root; DEK = HKDF-SHA256(ikm = tokenRoot, salt, info = UTF-8(ctx), L = 32)",
  masterScalar: masterScalarHex,
  timesliceRoot: toHex(rootSeed(scalar)),
  tokenRoot: toHex(root),
  salt: toHex(salt),
  iv: toHex(iv),
  version: 3,
  cases: cases.map((c) => {
    const ctx = tokenContext(c.integration, c.userId, c.field, c.rowVersion);
    const plaintext = `token-for-${c.userId}`;
    return { ...c, ctx, dek: toHex(tokenDek(root, salt, ctx)), plaintext, jwe: sealTokenEnvelope(plaintext, { root, version: 3, ctx, salt, iv }), saltB64: toBase64url(salt) };
  }),
};
writeFileSync(join(import.meta.dir, "token-dek.json"), JSON.stringify(out, null, 2) + "\n");
console.log("wrote test/vectors/token-dek.json");
