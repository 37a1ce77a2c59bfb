// KEK parsing (accepts the documented forms, names the problem otherwise) and master key wrapping.
import { describe, expect, test } from "bun:test";
import { DecryptionFailedError, KekFormatError, KekMismatchError } from "../../src/crypto/errors.ts";
import {
  fromBase64url,
  generateKek,
  generateMasterKeyPair,
  kekFingerprint,
  masterScalar,
  parseKek,
  toBase64url,
  toHex,
  unwrapPrivateJwk,
  wrapPrivateJwk,
} from "../../src/crypto/index.ts";

const kek = Uint8Array.from({ length: 32 }, (_, i) => i * 8 + 3);
const hex = toHex(kek);
const b64u = toBase64url(kek);
const std = Buffer.from(kek).toString("base64"); // padded, standard alphabet (openssl rand -base64 32)

function configMessage(v: string | undefined): string {
  try {
    parseKek(v);
  } catch (e) {
    expect(e).toBeInstanceOf(KekFormatError);
    return (e as Error).message;
  }
  throw new Error("expected parseKek to throw");
}

describe("parseKek", () => {
  test("accepts 64 hex (either case), 43 base64url, padded/standard base64, surrounding whitespace", () => {
    expect(b64u.length).toBe(43);
    for (const v of [hex, hex.toUpperCase(), b64u, `${b64u}=`, std, std.replace(/=$/, ""), ` ${hex}\n`])
      expect(parseKek(v)).toEqual(kek);
  });

  test("rejects with a message naming the problem and how to make a KEK", () => {
    const cases: [string | undefined, RegExp][] = [
      [undefined, /is not set/],
      ["", /is empty/],
      ["   ", /is empty/],
      [hex.slice(0, 62), /hex but has 62 characters \(31 bytes\)/],
      [`${hex}00`, /hex but has 66 characters \(33 bytes\)/],
      [hex.slice(0, 63), /hex but has 63 characters/],
      [b64u.slice(0, 40), /has 40 characters/],
      [`${b64u}AAAA`, /has 47 characters/],
      [`${hex.slice(0, 20)}!${hex.slice(21)}`, /position 21/],
      [`${b64u.slice(0, 10)} ${b64u.slice(11)}`, /position 11/],
      [`-${b64u.slice(1, 20)}+${b64u.slice(21)}`, /mixes/],
      [`==${b64u.slice(2)}`, /misplaced '='/],
      [`${b64u.slice(0, 42)}B`, /not canonical/],
    ];
    for (const [v, re] of cases) {
      const msg = configMessage(v);
      expect(msg).toMatch(re);
      expect(msg).toContain("MASTER_KEY_ENCRYPTION_KEY");
      expect(msg).toContain("openssl rand -hex 32");
    }
  });

  test("the error names the variable it was given", () => {
    expect(() => parseKek("", "MASTER_KEY_ENCRYPTION_KEY_PREVIOUS")).toThrow(
      /MASTER_KEY_ENCRYPTION_KEY_PREVIOUS is empty/,
    );
  });

  test("the suggested Bun one-liner produces a KEK that parses", async () => {
    const proc = Bun.spawnSync(["bun", "-e", "console.log(crypto.getRandomValues(new Uint8Array(32)).toHex())"]);
    const out = proc.stdout.toString();
    expect(out.trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(parseKek(out).length).toBe(32);
  });

  test("generateKek and fingerprints", () => {
    const a = generateKek();
    expect(a.length).toBe(32);
    expect(kekFingerprint(a)).toMatch(/^[0-9a-f]{16}$/);
    expect(kekFingerprint(kek)).toBe(kekFingerprint(parseKek(b64u)));
    expect(kekFingerprint(kek)).not.toBe(kekFingerprint(a));
    // Domain-separated: not a prefix of plain SHA-256(kek).
    expect(kekFingerprint(kek)).not.toBe(new Bun.CryptoHasher("sha256").update(kek).digest("hex").slice(0, 16));
    expect(() => kekFingerprint(new Uint8Array(31))).toThrow(KekFormatError);
  });
});

describe("master key wrapping", () => {
  test("generate → wrap → unwrap round trip; public JWK has no d", async () => {
    const { publicJwk, privateJwk } = await generateMasterKeyPair({ kid: "7" });
    expect("d" in publicJwk).toBe(false);
    expect(publicJwk).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", kid: "7" });
    const jwe = await wrapPrivateJwk(privateJwk, kek, { version: 7 });
    const header = JSON.parse(new TextDecoder().decode(fromBase64url(jwe.split(".")[0]!)));
    expect(header).toMatchObject({ alg: "A256KW", enc: "A256GCM", kid: "7" });
    expect(await unwrapPrivateJwk(jwe, kek, { version: 7 })).toEqual(privateJwk);
    expect(masterScalar(privateJwk).length).toBe(32);
  });

  test("the wrapped JWE does not contain d in clear, in the string or any decoded part", async () => {
    const { privateJwk } = await generateMasterKeyPair();
    const jwe = await wrapPrivateJwk(privateJwk, kek, { version: 1 });
    const dBytes = fromBase64url(privateJwk.d);
    expect(jwe).not.toContain(privateJwk.d);
    expect(jwe).not.toContain(privateJwk.d.slice(0, 12));
    const haystacks = jwe.split(".").map((p) => Buffer.from(fromBase64url(p)));
    for (const h of haystacks) {
      expect(h.includes(Buffer.from(dBytes.subarray(0, 8)))).toBe(false);
      expect(h.toString("latin1")).not.toContain(privateJwk.d.slice(0, 12));
    }
  });

  test("a wrong KEK fails with KekMismatchError; a damaged or mislabelled blob with DecryptionFailedError", async () => {
    const { privateJwk } = await generateMasterKeyPair();
    const jwe = await wrapPrivateJwk(privateJwk, kek, { version: 2 });
    await expect(unwrapPrivateJwk(jwe, generateKek())).rejects.toBeInstanceOf(KekMismatchError);
    await expect(unwrapPrivateJwk(jwe, kek, { version: 3 })).rejects.toBeInstanceOf(DecryptionFailedError);
    await expect(unwrapPrivateJwk("not.a.jwe", kek)).rejects.toBeInstanceOf(DecryptionFailedError);
  });

  test("an unwrapped JWK whose x/y do not match d is refused", async () => {
    const a = await generateMasterKeyPair();
    const b = await generateMasterKeyPair();
    const franken = { ...a.privateJwk, x: b.privateJwk.x, y: b.privateJwk.y };
    const jwe = await wrapPrivateJwk(franken, kek, { version: 1 });
    await expect(unwrapPrivateJwk(jwe, kek)).rejects.toBeInstanceOf(DecryptionFailedError);
  });
});
