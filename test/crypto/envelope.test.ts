// Envelope: round trips, interop with jose both ways, and attacks — tampering with any part, header
// edits, wrong context/kid, neighbouring slices, keys derivable from a cover that does not include it.
import { beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { CompactEncrypt, compactDecrypt, exportJWK } from "jose";
import { DecryptionFailedError } from "../../src/crypto/errors.ts";
import {
  SliceKeyDeriver,
  type SliceKey,
  decryptEnvelope,
  decryptEnvelopeToString,
  deriveCover,
  encryptEnvelope,
  fromBase64url,
  fromHex,
  leafFromSubtree,
  readEnvelopeHeader,
  sliceKeyFromLeaf,
  subtreeRange,
  toBase64url,
  utf8,
} from "../../src/crypto/index.ts";

const SLICE_SECONDS = 3600;
const E = 493000;
const CTX = "oauth:github:user-42:access";
const TOKEN = "gho_16C7e42F292c6912E7710c838347Ae178B4a";
const tsOf = (e: number) => e * SLICE_SECONDS * 1000 + 1234;

let deriver: SliceKeyDeriver;
let key: SliceKey;
let jwe: string;

async function expectFails(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DecryptionFailedError);
  expect((err as Error).message).toBe("decryption failed");
}

beforeAll(async () => {
  deriver = new SliceKeyDeriver({
    masterScalar: fromHex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"),
    version: 3,
    sliceSeconds: SLICE_SECONDS,
  });
  key = await deriver.get(E);
  jwe = await encryptEnvelope(TOKEN, {
    publicKey: key.publicKey,
    kid: key.kid,
    ts: tsOf(E),
    ctx: CTX,
    sliceSeconds: SLICE_SECONDS,
  });
});

const open = (j: string, k: SliceKey = key, extra: Partial<Parameters<typeof decryptEnvelope>[1]> = {}) =>
  decryptEnvelopeToString(j, { privateKey: k.privateKey, expectedCtx: CTX, ...extra });

function reheader(
  j: string,
  edit: (h: Record<string, unknown>) => void,
  serialise: (h: Record<string, unknown>) => string = (h) => JSON.stringify(h),
): string {
  const parts = j.split(".");
  const h = JSON.parse(new TextDecoder().decode(fromBase64url(parts[0]!)));
  edit(h);
  parts[0] = toBase64url(utf8(serialise(h)));
  return parts.join(".");
}

describe("round trip", () => {
  test("string and binary plaintexts, JWK and CryptoKey keys", async () => {
    expect(await open(jwe)).toBe(TOKEN);
    expect(
      await decryptEnvelopeToString(jwe, {
        privateKey: key.privateJwk,
        expectedCtx: CTX,
        expectedKid: "3:493000",
        sliceSeconds: SLICE_SECONDS,
      }),
    ).toBe(TOKEN);
    const bin = crypto.getRandomValues(new Uint8Array(1000));
    const j2 = await encryptEnvelope(bin, { publicKey: key.publicJwk, kid: key.kid, ts: tsOf(E), ctx: CTX });
    expect(await decryptEnvelope(j2, { privateKey: key.privateKey, expectedCtx: CTX })).toEqual(bin);
    const empty = await encryptEnvelope("", { publicKey: key.publicKey, kid: key.kid, ts: tsOf(E), ctx: CTX });
    expect(await open(empty)).toBe("");
  });

  test("header is exactly { alg, enc, kid, ts, ctx, epk } and readable without decrypting", () => {
    const h = JSON.parse(new TextDecoder().decode(fromBase64url(jwe.split(".")[0]!)));
    expect(Object.keys(h).sort()).toEqual(["alg", "ctx", "enc", "epk", "kid", "ts"]);
    expect(h).toMatchObject({ alg: "ECDH-ES", enc: "A256GCM", kid: "3:493000", ts: tsOf(E), ctx: CTX });
    expect(jwe.split(".")[1]).toBe("");
    expect(readEnvelopeHeader(jwe)).toEqual({ kid: "3:493000", version: 3, slice: E, ts: tsOf(E), ctx: CTX });
  });

  test("refuses to encrypt with a kid that does not match ts", async () => {
    await expect(
      encryptEnvelope(TOKEN, {
        publicKey: key.publicKey,
        kid: key.kid,
        ts: tsOf(E + 1),
        ctx: CTX,
        sliceSeconds: SLICE_SECONDS,
      }),
    ).rejects.toThrow();
    await expect(
      encryptEnvelope(TOKEN, { publicKey: key.publicKey, kid: "3:01", ts: tsOf(E), ctx: CTX }),
    ).rejects.toThrow();
  });
});

describe("jose interop", () => {
  test("ours → jose compactDecrypt", async () => {
    const { plaintext, protectedHeader } = await compactDecrypt(jwe, key.privateKey);
    expect(new TextDecoder().decode(plaintext)).toBe(TOKEN);
    expect(protectedHeader).toMatchObject({ kid: key.kid, ts: tsOf(E), ctx: CTX });
  });

  test("jose CompactEncrypt → ours, with and without apu/apv", async () => {
    const header = { alg: "ECDH-ES", enc: "A256GCM", kid: key.kid, ts: tsOf(E), ctx: CTX };
    const j1 = await new CompactEncrypt(utf8(TOKEN)).setProtectedHeader(header).encrypt(key.publicKey);
    expect(await open(j1)).toBe(TOKEN);
    const j2 = await new CompactEncrypt(utf8(TOKEN))
      .setProtectedHeader(header)
      .setKeyManagementParameters({ apu: utf8("Alice"), apv: utf8("Bob") })
      .encrypt(await exportJWK(key.publicKey));
    expect(JSON.parse(new TextDecoder().decode(fromBase64url(j2.split(".")[0]!))).apu).toBe("QWxpY2U");
    expect(await open(j2)).toBe(TOKEN);
  });

  test("jose envelopes with other algorithms or crit are refused", async () => {
    const base = { kid: key.kid, ts: tsOf(E), ctx: CTX };
    const a128 = await new CompactEncrypt(utf8(TOKEN))
      .setProtectedHeader({ ...base, alg: "ECDH-ES", enc: "A128GCM" })
      .encrypt(key.publicKey);
    await expectFails(open(a128));
    const kw = await new CompactEncrypt(utf8(TOKEN))
      .setProtectedHeader({ ...base, alg: "ECDH-ES+A256KW", enc: "A256GCM" })
      .encrypt(key.publicKey);
    await expectFails(open(kw));
    const zip = await new CompactEncrypt(utf8(TOKEN))
      .setProtectedHeader({ ...base, alg: "ECDH-ES", enc: "A256GCM", typ: "x", cty: "y", foo: 1 })
      .encrypt(key.publicKey);
    await expectFails(open(zip));
  });
});

describe("tampering", () => {
  test("flipping any single character of any part fails with the one generic error", async () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (let i = 0; i < jwe.length; i++) {
      if (jwe[i] === ".") continue;
      const c = jwe[i]!;
      // Change to the character whose 6-bit value differs only in its lowest bit: the hardest case
      // for a lax decoder (unused trailing bits), and to an arbitrary other one.
      const lowFlip = alphabet[alphabet.indexOf(c) ^ 1]!;
      await expectFails(open(jwe.slice(0, i) + lowFlip + jwe.slice(i + 1)));
    }
  });

  test("random byte-level corruption of decoded parts fails", async () => {
    const parts = jwe.split(".");
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(0, 2, 3, 4), fc.nat(), fc.integer({ min: 1, max: 255 }), async (p, pos, x) => {
        const bytes = fromBase64url(parts[p]!);
        const at = pos % bytes.length;
        bytes[at]! ^= x;
        const t = [...parts];
        t[p] = toBase64url(bytes);
        await expectFails(open(t.join(".")));
      }),
      { numRuns: 400 },
    );
  });

  test("structural damage: parts added/removed, encrypted key filled, truncation, padding, whitespace", async () => {
    const p = jwe.split(".");
    const cases = [
      p.slice(0, 4).join("."),
      [...p, ""].join("."),
      [p[0], "AAAA", p[2], p[3], p[4]].join("."),
      [p[0], "", p[2], p[3], p[4]!.slice(0, -2)].join("."),
      [p[0], "", p[2]!.slice(0, -1), p[3], p[4]].join("."),
      [p[0], "", p[2], "", p[4]].join("."),
      `${jwe}=`,
      ` ${jwe}`,
      "",
      "....",
      [p[0], "", p[2], `+${p[3]!.slice(1)}`, p[4]].join("."), // standard-alphabet character
      [p[0], "", p[2], `${p[3]}=`, p[4]].join("."),
    ];
    // Every case must really differ from the original, or "fails" would be vacuous.
    for (const c of cases) expect(c).not.toBe(jwe);
    for (const c of cases) await expectFails(open(c));
    await expectFails(decryptEnvelope(42 as unknown as string, { privateKey: key.privateKey, expectedCtx: CTX }));
  });

  test("re-encoded header edits (ts, kid, ctx, alg, enc, crit, epk) fail", async () => {
    const edits: ((h: Record<string, unknown>) => void)[] = [
      (h) => (h.ts = (h.ts as number) + 1),
      (h) => (h.ts = String(h.ts)),
      (h) => (h.ts = 1.5),
      (h) => (h.kid = `3:${E + 1}`),
      (h) => (h.kid = `4:${E}`),
      (h) => (h.ctx = "oauth:github:user-43:access"),
      (h) => (h.alg = "ECDH-ES+A256KW"),
      (h) => (h.enc = "A128GCM"),
      (h) => (h.crit = ["ts"]),
      (h) => (h.zip = "DEF"),
      (h) => delete h.ctx,
      (h) => ((h.epk as Record<string, string>).crv = "P-384"),
      (h) => ((h.epk as Record<string, string>).y = (h.epk as Record<string, string>).x!), // not on the curve
    ];
    for (const edit of edits) await expectFails(open(reheader(jwe, edit)));
  });

  test("a header re-encoded with the same content but other bytes (spacing, key order) fails", async () => {
    // The AAD is the header's exact bytes: a decoder that re-serialises the parsed header for the
    // AAD would accept these.
    const reencodings = [
      reheader(
        jwe,
        () => {},
        (h) => JSON.stringify(h, null, 1),
      ),
      reheader(
        jwe,
        () => {},
        (h) => ` ${JSON.stringify(h)}`,
      ),
      reheader(
        jwe,
        () => {},
        (h) => JSON.stringify(Object.fromEntries(Object.entries(h).reverse())),
      ),
    ];
    const header = jwe.split(".")[0];
    for (const r of reencodings) {
      // Same content, different bytes, or "fails" would be vacuous.
      expect(readEnvelopeHeader(r)).toEqual(readEnvelopeHeader(jwe));
      expect(r.split(".")[0]).not.toBe(header);
      await expectFails(open(r));
    }
  });

  test("an attacker re-encrypting with a fresh epk but an edited header cannot reach the key", async () => {
    // Off-curve / invalid epk points must be refused before any ECDH (invalid-curve attack).
    const off = reheader(
      jwe,
      (h) =>
        (h.epk = { kty: "EC", crv: "P-256", x: toBase64url(new Uint8Array(32)), y: toBase64url(new Uint8Array(32)) }),
    );
    await expectFails(open(off));
  });
});

describe("context and kid checks", () => {
  test("expectedCtx mismatch fails with the same error", async () => {
    await expectFails(decryptEnvelope(jwe, { privateKey: key.privateKey, expectedCtx: "oauth:github:user-43:access" }));
    await expectFails(decryptEnvelope(jwe, { privateKey: key.privateKey, expectedCtx: `${CTX} ` }));
    await expectFails(decryptEnvelope(jwe, { privateKey: key.privateKey, expectedCtx: "" }));
  });

  test("expectedKid mismatch and ts outside the kid's slice fail", async () => {
    await expectFails(open(jwe, key, { expectedKid: `3:${E + 1}` }));
    // ts/kid inconsistent (made with jose, which does not know our rule).
    const j = await new CompactEncrypt(utf8(TOKEN))
      .setProtectedHeader({ alg: "ECDH-ES", enc: "A256GCM", kid: key.kid, ts: tsOf(E + 1), ctx: CTX })
      .encrypt(key.publicKey);
    expect(await open(j)).toBe(TOKEN); // without sliceSeconds the check is off
    await expectFails(open(j, key, { sliceSeconds: SLICE_SECONDS }));
  });

  test("readEnvelopeHeader rejects malformed headers with the same error", () => {
    for (const bad of [
      "",
      "x.y",
      reheader(jwe, (h) => (h.kid = "3:1:2")),
      reheader(jwe, (h) => (h.kid = `3:${2 ** 32}`)),
      reheader(jwe, (h) => (h.ts = -1)),
    ]) {
      expect(() => readEnvelopeHeader(bad)).toThrow(DecryptionFailedError);
    }
  });
});

describe("slice isolation", () => {
  test("the key of slice e opens neither e-1 nor e+1", async () => {
    for (const other of [E - 1, E + 1]) {
      const k = await deriver.get(other);
      const j = await encryptEnvelope(TOKEN, { publicKey: k.publicKey, kid: k.kid, ts: tsOf(other), ctx: CTX });
      expect(await open(j, k)).toBe(TOKEN);
      await expectFails(open(j, key));
      // Even relabelled to claim slice e, the ciphertext does not open with e's key.
      await expectFails(
        open(
          reheader(j, (h) => {
            h.kid = key.kid;
            h.ts = tsOf(E);
          }),
          key,
        ),
      );
    }
  });

  test("no key derivable from a cover of [a, b] opens a slice outside it", async () => {
    const a = E - 5;
    const b = E + 9;
    const outside = [a - 1, b + 1];
    const targets = await Promise.all(outside.map(async (e) => ({ e, k: await deriver.get(e) })));
    const jwes = await Promise.all(
      targets.map(({ e, k }) => encryptEnvelope(TOKEN, { publicKey: k.publicKey, kid: k.kid, ts: tsOf(e), ctx: CTX })),
    );
    for (const n of deriveCover(deriver.rootSeed, a, b)) {
      const r = subtreeRange(n.depth, n.index);
      for (let e = r.from; e <= r.to; e++) {
        const k = await sliceKeyFromLeaf(leafFromSubtree(n.seed, n.depth, n.index, e), e, 3);
        for (const j of jwes) await expectFails(open(j, k));
      }
      for (const { e } of targets) expect(() => leafFromSubtree(n.seed, n.depth, n.index, e)).toThrow();
    }
  });
});

describe("duplicate header members (RFC 7516 §4)", () => {
  test("a validly encrypted envelope whose header names ctx twice is refused, not parsed last-wins", async () => {
    const { createCipheriv, diffieHellman, generateKeyPairSync, createPublicKey } = await import("node:crypto");
    const { concatKdf } = await import("../../src/crypto/ecdh-es.ts");
    const eph = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const e = eph.publicKey.export({ format: "jwk" });
    const recipient = createPublicKey({
      key: { kty: "EC", crv: "P-256", x: key.publicJwk.x, y: key.publicJwk.y },
      format: "jwk",
    });
    const cek = concatKdf(diffieHellman({ privateKey: eph.privateKey, publicKey: recipient }), 256, "A256GCM");
    const seal = (headerJson: string) => {
      const header = toBase64url(utf8(headerJson));
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const c = createCipheriv("aes-256-gcm", cek, iv);
      c.setAAD(utf8(header));
      const ct = Buffer.concat([c.update(TOKEN), c.final()]);
      return `${header}..${toBase64url(iv)}.${toBase64url(ct)}.${toBase64url(c.getAuthTag())}`;
    };
    const epk = JSON.stringify({ kty: "EC", crv: "P-256", x: e.x, y: e.y });
    const good = `{"alg":"ECDH-ES","enc":"A256GCM","kid":"${key.kid}","ts":${tsOf(E)},"ctx":"${CTX}","epk":${epk}}`;
    expect(await open(seal(good))).toBe(TOKEN);
    for (const dup of [
      `{"alg":"ECDH-ES","enc":"A256GCM","kid":"${key.kid}","ts":${tsOf(E)},"ctx":"oauth:github:someone-else:access","epk":${epk},"ctx":"${CTX}"}`,
      `{"alg":"ECDH-ES","enc":"A256GCM","kid":"${key.kid}","ts":${tsOf(E)},"ctx":"${CTX}","epk":${epk},"\\u0063tx":"${CTX}"}`,
      `{"alg":"ECDH-ES","enc":"A256GCM","kid":"${key.kid}","ts":${tsOf(E)},"ctx":"${CTX}","epk":${epk.replace('"crv"', '"x":"AAAA","crv"')}}`,
    ]) {
      await expectFails(open(seal(dup)));
      expect(() => readEnvelopeHeader(seal(dup))).toThrow(DecryptionFailedError);
    }
  });

  test("assertNoDuplicateMembers: nested objects, arrays, escapes and strings that look like JSON", async () => {
    const { assertNoDuplicateMembers } = await import("../../src/crypto/strict-json.ts");
    for (const ok of [
      '{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}',
      '{"a":"\\"a\\":1,","b":"{\\"a\\":1}"}',
      '[1,{"a":[]},{"a":{}}]',
      '{"":1,"\\\\":2}',
    ]) {
      expect(() => assertNoDuplicateMembers(ok)).not.toThrow();
    }
    for (const bad of [
      '{"a":1,"a":2}',
      '{"x":{"a":1,"b":[1,2],"a":3}}',
      '[{"k":1},{"k":1,"k":2}]',
      '{"a":1,"\\u0061":2}',
    ]) {
      expect(() => assertNoDuplicateMembers(bad)).toThrow(/duplicate member/);
    }
  });
});
