/**
 * The token envelope and key domains (SPEC v2 §4): known answers from test/vectors/token-dek.json,
 * recomputed independently (WebCrypto HKDF, jose's `dir` decryption); the ctx is unambiguous; every
 * tampering is the one generic DecryptionFailedError.
 */
import { describe, expect, test } from "bun:test";
import { compactDecrypt } from "jose";
import vectors from "../vectors/token-dek.json";
import {
  fromHex,
  openTokenEnvelope,
  readTokenEnvelopeHeader,
  rootSeed,
  sealTokenEnvelope,
  toHex,
  tokenContext,
  tokenDek,
  tokenRoot,
  isTokenEnvelope,
  type TokenField,
} from "../../src/crypto/index.ts";
import { DecryptionFailedError } from "../../src/crypto/errors.ts";

async function webHkdf(
  ikm: Uint8Array<ArrayBuffer>,
  salt: Uint8Array<ArrayBuffer>,
  info: Uint8Array<ArrayBuffer>,
): Promise<string> {
  const k = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return toHex(new Uint8Array(await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, k, 256)));
}
const te = new TextEncoder();

describe("token DEK known answers (test/vectors/token-dek.json)", () => {
  const scalar = fromHex(vectors.masterScalar);
  const root = fromHex(vectors.tokenRoot);
  const salt = fromHex(vectors.salt);

  test("key domains: the timeslice root is v1's GGM root; the token root is a separate HKDF label", async () => {
    expect(toHex(rootSeed(scalar))).toBe(vectors.timesliceRoot);
    expect(toHex(tokenRoot(scalar))).toBe(vectors.tokenRoot);
    expect(await webHkdf(scalar, te.encode("chronokms/v2/key-domains"), te.encode("chronokms/v2/token-root"))).toBe(
      vectors.tokenRoot,
    );
    expect(await webHkdf(scalar, te.encode("chronokms/v1/ggm-salt"), te.encode("chronokms/v1/ggm-root"))).toBe(
      vectors.timesliceRoot,
    );
    expect(vectors.tokenRoot).not.toBe(vectors.timesliceRoot);
  });

  for (const c of vectors.cases) {
    test(`ctx, DEK and envelope for (${c.integration}, ${c.userId}, ${c.field}, ${c.rowVersion})`, async () => {
      expect(tokenContext(c.integration, c.userId, c.field as TokenField, c.rowVersion)).toBe(c.ctx);
      expect(JSON.parse(c.ctx)).toEqual(["chronokms/oauth-token/v2", c.integration, c.userId, c.field, c.rowVersion]);
      expect(toHex(tokenDek(root, salt, c.ctx))).toBe(c.dek);
      expect(await webHkdf(root, salt, te.encode(c.ctx))).toBe(c.dek);
      expect(
        sealTokenEnvelope(c.plaintext, { root, version: vectors.version, ctx: c.ctx, salt, iv: fromHex(vectors.iv) }),
      ).toBe(c.jwe);
      expect(
        new TextDecoder().decode(openTokenEnvelope(c.jwe, { root, version: vectors.version, expectedCtx: c.ctx })),
      ).toBe(c.plaintext);
      // Any JOSE library opens it given the DEK: alg dir, enc A256GCM, header as AAD.
      const { plaintext, protectedHeader } = await compactDecrypt(c.jwe, fromHex(c.dek));
      expect(new TextDecoder().decode(plaintext)).toBe(c.plaintext);
      expect(protectedHeader).toEqual({
        alg: "dir",
        enc: "A256GCM",
        kid: `tok:${vectors.version}`,
        salt: c.saltB64,
        ctx: c.ctx,
      });
    });
  }
});

describe("token envelope", () => {
  const root = crypto.getRandomValues(new Uint8Array(32));
  const ctx = tokenContext("gmail", "alice", "access", 2);

  test("identifiers with ':' cannot shift into a neighbour; fields and row versions differ", () => {
    const all = [
      tokenContext("a", "b:c", "access", 1),
      tokenContext("a:b", "c", "access", 1),
      tokenContext("a", "b:c", "refresh", 1),
      tokenContext("a", "b:c", "access", 2),
      tokenContext("a", 'b","c', "access", 1),
      tokenContext('a","b', "c", "access", 1),
    ];
    expect(new Set(all).size).toBe(all.length);
  });

  test("fresh salt and IV per seal; the header names kid tok:<version>", () => {
    const a = sealTokenEnvelope("x", { root, version: 5, ctx });
    const b = sealTokenEnvelope("x", { root, version: 5, ctx });
    expect(a).not.toBe(b);
    expect(isTokenEnvelope(a)).toBe(true);
    const h = readTokenEnvelopeHeader(a);
    expect([h.kid, h.version, h.ctx, h.salt.length]).toEqual(["tok:5", 5, ctx, 32]);
    expect(readTokenEnvelopeHeader(b).salt).not.toEqual(h.salt);
  });

  test("wrong ctx, version, root, or any edited part → DecryptionFailedError", () => {
    const jwe = sealTokenEnvelope("secret", { root, version: 5, ctx });
    const fail = (j: string, o: Partial<{ root: Uint8Array; version: number; expectedCtx: string }> = {}) =>
      expect(() => openTokenEnvelope(j, { root, version: 5, expectedCtx: ctx, ...o })).toThrow(DecryptionFailedError);
    fail(jwe, { expectedCtx: tokenContext("gmail", "alice", "access", 1) });
    fail(jwe, { expectedCtx: tokenContext("gmail", "alice", "refresh", 2) });
    fail(jwe, { version: 4 });
    fail(jwe, { root: crypto.getRandomValues(new Uint8Array(32)) });
    const parts = jwe.split(".");
    for (let i = 0; i < 5; i++) {
      const p = [...parts];
      p[i] = i === 1 ? "AAAA" : p[i]!.slice(0, -2) + (p[i]!.endsWith("AA") ? "BA" : "AA");
      fail(p.join("."));
    }
    // A header re-encoded with another ctx (the AAD changes) fails too.
    const h = JSON.parse(Buffer.from(parts[0]!, "base64url").toString());
    h.ctx = tokenContext("gmail", "mallory", "access", 2);
    fail([Buffer.from(JSON.stringify(h)).toString("base64url"), ...parts.slice(1)].join("."), { expectedCtx: h.ctx });
  });
});
