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
  parseTokenEnvelope,
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
import { createCipheriv } from "node:crypto";

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

  /** A correctly encrypted envelope around any header text (so only the header parser can refuse it). */
  function withHeader(json: string, salt: Uint8Array, hctx: string, plaintext = "secret"): string {
    const header = Buffer.from(json).toString("base64url");
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const c = createCipheriv("aes-256-gcm", tokenDek(root, salt, hctx), iv, { authTagLength: 16 });
    c.setAAD(Buffer.from(header));
    const ct = Buffer.concat([c.update(plaintext), c.final()]);
    const b = (x: Uint8Array) => Buffer.from(x).toString("base64url");
    return `${header}..${b(iv)}.${b(ct)}.${b(c.getAuthTag())}`;
  }

  test("a header written otherwise (order, spacing, escapes) parses to the same members; the sealer's own form too", async () => {
    const salt = crypto.getRandomValues(new Uint8Array(32));
    const s64 = Buffer.from(salt).toString("base64url");
    const written = sealTokenEnvelope("secret", { root, version: 5, ctx, salt });
    const texts = [
      `{"alg":"dir","enc":"A256GCM","kid":"tok:5","salt":"${s64}","ctx":${JSON.stringify(ctx)}}`,
      `{"ctx":${JSON.stringify(ctx)},"salt":"${s64}","kid":"tok:5","enc":"A256GCM","alg":"dir"}`,
      `{ "alg" : "dir", "enc":"A256GCM", "kid":"tok:5", "salt":"${s64}", "ctx":${JSON.stringify(ctx)} }`,
      `{"\u0061lg":"dir","enc":"A256GCM","kid":"tok:5","salt":"${s64}","ctx":${JSON.stringify(ctx).replace("c", "\\u0063")}}`,
    ];
    expect(Buffer.from(written.split(".")[0]!, "base64url").toString()).toBe(texts[0]!);
    for (const text of texts) {
      const jwe = withHeader(text, salt, ctx);
      const p = parseTokenEnvelope(jwe);
      expect([p.kid, p.version, p.ctx, toHex(p.salt)]).toEqual(["tok:5", 5, ctx, toHex(salt)]);
      expect(new TextDecoder().decode(openTokenEnvelope(jwe, { root, version: 5, expectedCtx: ctx }))).toBe("secret");
      // jose agrees on every accepted form.
      const { plaintext } = await compactDecrypt(jwe, tokenDek(root, salt, ctx));
      expect(new TextDecoder().decode(plaintext)).toBe("secret");
    }
  });

  test("duplicate, missing or extra header members, a bad kid or salt: refused even under a valid tag", () => {
    const salt = crypto.getRandomValues(new Uint8Array(32));
    const s64 = Buffer.from(salt).toString("base64url");
    const c = JSON.stringify(ctx);
    const refused = [
      `{"alg":"dir","enc":"A256GCM","kid":"tok:5","salt":"${s64}","ctx":${c},"ctx":${c}}`,
      `{"alg":"dir","enc":"A256GCM","kid":"tok:5","kid":"tok:5","salt":"${s64}","ctx":${c}}`,
      `{"alg":"dir","\u0061lg":"dir","enc":"A256GCM","kid":"tok:5","salt":"${s64}","ctx":${c}}`,
      `{"alg":"dir","enc":"A256GCM","kid":"tok:5","salt":"${s64}"}`,
      `{"alg":"dir","enc":"A256GCM","kid":"tok:5","salt":"${s64}","ctx":${c},"zip":"DEF"}`,
      `{"alg":"dir","enc":"A256GCM","kid":"tok:05","salt":"${s64}","ctx":${c}}`,
      `{"alg":"dir","enc":"A128GCM","kid":"tok:5","salt":"${s64}","ctx":${c}}`,
      `{"alg":"dir","enc":"A256GCM","kid":"tok:5","salt":"${s64.slice(0, -1)}B","ctx":${c}}`, // non-canonical
      `{"alg":"dir","enc":"A256GCM","kid":"tok:5","salt":"${s64}=","ctx":${c}}`,
      `{"alg":"dir","enc":"A256GCM","kid":"tok:99999999999999999","salt":"${s64}","ctx":${c}}`,
      `{"alg":"dir","enc":"A256GCM","kid":"tok:5","salt":"${s64}","ctx":""}`,
    ];
    for (const text of refused) {
      const jwe = withHeader(text, salt, ctx);
      expect(() => parseTokenEnvelope(jwe)).toThrow(DecryptionFailedError);
      expect(() => openTokenEnvelope(jwe, { root, version: 5, expectedCtx: ctx })).toThrow(DecryptionFailedError);
    }
  });

  test("the compact form is strict: empty encrypted key, url alphabet, canonical base64url, IV and tag sizes", () => {
    const jwe = sealTokenEnvelope("secret", { root, version: 5, ctx });
    const [h, , iv, ct, tag] = jwe.split(".") as [string, string, string, string, string];
    const bad = [
      `${h}.AA.${iv}.${ct}.${tag}`,
      `${h}..${iv}.${ct}.${tag}.`,
      `${h}..${iv}A.${ct}.${tag}`,
      `${h}..${iv}.${ct}.${tag}A`,
      `${h}..${iv}.${ct}.${tag.slice(0, -1)}B`, // tag's last character with unused bits set
      `${h}..${iv}.${ct}=.${tag}`,
      `${h}..${iv}.${ct.slice(0, 4)}+${ct.slice(5)}.${tag}`,
      `${h} ..${iv}.${ct}.${tag}`,
      `${h}..${iv}.${ct}A.${tag}`, // a ciphertext length no base64url has
    ];
    // A ciphertext whose last character carries unused bits (when its length leaves some).
    if (ct.length % 4 !== 0) bad.push(`${h}..${iv}.${ct.slice(0, -1)}${ct.endsWith("B") ? "C" : "B"}.${tag}`);
    for (const j of bad)
      expect(() => openTokenEnvelope(j, { root, version: 5, expectedCtx: ctx })).toThrow(DecryptionFailedError);
    expect(
      new TextDecoder().decode(openTokenEnvelope(parseTokenEnvelope(jwe), { root, version: 5, expectedCtx: ctx })),
    ).toBe("secret");
  });
});
