/** KEK resolution: env KEK, clear refusals, the development KEK file (created once, announced, never in production). */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kekFingerprint, parseKek, weakKekReason } from "../../src/crypto/index.ts";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";
import { createLogger } from "../../src/log.ts";
import { devKekPath, resolveKek, resolvePreviousKek } from "../../src/keys/kek.ts";
import { TEST_KEK } from "../support/app.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir() {
  const d = mkdtempSync(join(tmpdir(), "chronokms-kek-"));
  dirs.push(d);
  return d;
}

function capture() {
  const logs: string[] = [];
  const stderr: string[] = [];
  return { log: createLogger("debug", {}, (l) => logs.push(l)), logs, stderr, err: (l: string) => stderr.push(l) };
}

describe("resolveKek", () => {
  test("uses MASTER_KEY_ENCRYPTION_KEY when set, with its fingerprint, and writes no file", () => {
    const dataDir = tempDir();
    const c = capture();
    const r = resolveKek({ kek: TEST_KEK, isProduction: true, dataDir }, c.log, c.err);
    expect(r.source).toBe("env");
    expect(r.kekId).toBe(kekFingerprint(parseKek(TEST_KEK)));
    expect(r.kekId).toMatch(/^[0-9a-f]{16}$/);
    expect(c.stderr).toEqual([]);
    expect(() => statSync(devKekPath({ dataDir }))).toThrow();
  });

  test("a malformed KEK says what is wrong and how to generate one", () => {
    for (const [value, what] of [
      ["abc123", /looks like hex but has 6 characters/],
      ["a".repeat(63), /63 characters/],
      [`zz!${"a".repeat(40)}`, /neither hex nor base64/],
    ] as const) {
      let err: unknown;
      try {
        resolveKek({ kek: value, isProduction: false, dataDir: tempDir() }, capture().log, () => {});
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/^MASTER_KEY_ENCRYPTION_KEY /);
      expect((err as Error).message).toMatch(what);
      expect((err as Error).message).toContain("openssl rand -hex 32");
      expect((err as Error).message).not.toContain(value);
    }
  });

  test("production without a KEK refuses, explains how to make one, and creates no file", () => {
    const dataDir = tempDir();
    expect(() => resolveKek({ kek: undefined, isProduction: true, dataDir }, capture().log, () => {})).toThrow(
      /MASTER_KEY_ENCRYPTION_KEY is not set; in production it is required.*openssl rand -hex 32/,
    );
    expect(() => statSync(devKekPath({ dataDir }))).toThrow();
  });

  test("outside production: a development KEK is created once (0600, 64 hex), reused, and announced at every start", () => {
    const dataDir = join(tempDir(), "nested", "data");
    const first = capture();
    const a = resolveKek({ kek: undefined, isProduction: false, dataDir }, first.log, first.err);
    expect(a.source).toBe("dev-file");
    const path = devKekPath({ dataDir });
    expect(readFileSync(path, "utf8")).toMatch(/^[0-9a-f]{64}\n$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(first.stderr.join("\n")).toMatch(
      /WARNING: USING A DEVELOPMENT KEK .*just created.*MASTER_KEY_ENCRYPTION_KEY/,
    );
    expect(
      first.logs.some((l) => JSON.parse(l).level === "warn" && JSON.parse(l).msg.includes("DEVELOPMENT KEK")),
    ).toBe(true);

    const second = capture();
    const b = resolveKek({ kek: undefined, isProduction: false, dataDir }, second.log, second.err);
    expect(b.kekId).toBe(a.kekId);
    expect(Buffer.from(b.kek).equals(Buffer.from(a.kek))).toBe(true);
    expect(second.stderr.join("\n")).toMatch(/WARNING: USING A DEVELOPMENT KEK/);
    expect(second.stderr.join("\n")).not.toContain("just created");
    // The key itself never appears in what is printed.
    expect(first.stderr.join("") + first.logs.join("")).not.toContain(readFileSync(path, "utf8").trim());
  });

  test("a damaged development KEK file is refused, not silently replaced", () => {
    const dataDir = tempDir();
    resolveKek({ kek: undefined, isProduction: false, dataDir }, capture().log, () => {});
    writeFileSync(devKekPath({ dataDir }), "not a key\n");
    expect(() => resolveKek({ kek: undefined, isProduction: false, dataDir }, capture().log, () => {})).toThrow(
      /development KEK file .* is not 64 lowercase hex/,
    );
  });

  test("resolvePreviousKek names its own variable", () => {
    expect(() => resolvePreviousKek({ kekPrevious: undefined })).toThrow(
      /MASTER_KEY_ENCRYPTION_KEY_PREVIOUS is not set/,
    );
    expect(() => resolvePreviousKek({ kekPrevious: "short" })).toThrow(/^MASTER_KEY_ENCRYPTION_KEY_PREVIOUS /);
    expect(resolvePreviousKek({ kekPrevious: TEST_KEK }).kekId).toBe(kekFingerprint(parseKek(TEST_KEK)));
  });
});

describe("weak and empty KEKs (v2)", () => {
  const weak: Array<[string, string, RegExp]> = [
    ["32 zero bytes", "00".repeat(32), /all 32 bytes are the same/],
    ["one repeated byte", "7".repeat(64), /all 32 bytes are the same/],
    ["a short block repeated", "deadbeef".repeat(8), /repeats a 4-byte block/],
    ["a 16-byte key pasted twice", "0f1e2d3c4b5a69788796a5b4c3d2e1f0".repeat(2), /repeats a 16-byte block/],
    ["a counter", Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString("hex"), /counts up or down/],
    [
      "a counter in steps",
      Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 8 + 3) & 0xff)).toString("hex"),
      /counts up or down/,
    ],
    ["a passphrase", Buffer.from("correct horse battery staple 123").toString("base64url"), /printable text/],
    // A passphrase typed directly in base64url form: the text itself is words, its bytes look random.
    ["a passphrase typed as base64url text", "ChronoKmsProductionKek2026ChangeMeNowPleasA", /dictionary words/],
    ["a passphrase typed as padded base64 text", "MyCompanySecretKeyForProductionUseOnly2026A=", /dictionary words/],
    [
      "few distinct bytes",
      Buffer.from("31415926535897932384626433832795".split("").map((d) => Number(d) * 17)).toString("hex"),
      /only 9 distinct byte values/,
    ],
  ];
  for (const [what, value, reason] of weak) {
    test(`MASTER_KEY_ENCRYPTION_KEY of ${what} is refused with a clear message, without echoing it`, () => {
      const dataDir = tempDir();
      let err: unknown;
      try {
        resolveKek({ kek: value, isProduction: false, dataDir }, capture().log, () => {});
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      const msg = (err as Error).message;
      expect(msg).toMatch(/^MASTER_KEY_ENCRYPTION_KEY is not a random key: /);
      expect(msg).toMatch(reason);
      expect(msg).toContain("openssl rand -hex 32");
      expect(msg).not.toContain(value);
      expect(msg.split("\n")).toHaveLength(1);
      expect(() => statSync(devKekPath({ dataDir }))).toThrow();
    });
  }

  test("real keys pass: the test KEKs and 1000 random ones", () => {
    for (const k of [TEST_KEK, "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"]) {
      expect(resolveKek({ kek: k, isProduction: true, dataDir: tempDir() }, capture().log, () => {}).source).toBe(
        "env",
      );
    }
    for (let i = 0; i < 1000; i++) expect(weakKekReason(crypto.getRandomValues(new Uint8Array(32)))).toBeNull();
    // The text check on random keys in their base64url form (false-positive bound < 2^-41 per key).
    for (let i = 0; i < 2000; i++) {
      const text = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
      expect(weakKekReason(parseKek(text), text)).toBeNull();
    }
  });

  test("the previous KEK may be weak (rotating away from it is the fix)", () => {
    expect(resolvePreviousKek({ kekPrevious: "00".repeat(32) }).kekId).toMatch(/^[0-9a-f]{16}$/);
  });

  test("an empty MASTER_KEY_ENCRYPTION_KEY= is an error, not 'unset': no development KEK is created", () => {
    expect(loadConfig({ MASTER_KEY_ENCRYPTION_KEY: "" }).kek).toBe("");
    for (const isProduction of [false, true]) {
      const dataDir = tempDir();
      expect(() =>
        resolveKek(
          { kek: loadConfig({ MASTER_KEY_ENCRYPTION_KEY: "" }).kek, isProduction, dataDir },
          capture().log,
          () => {},
        ),
      ).toThrow(
        isProduction
          ? /^MASTER_KEY_ENCRYPTION_KEY is set but empty; .*openssl rand -hex 32/
          : /^MASTER_KEY_ENCRYPTION_KEY is set but empty; .*unset it to use the development KEK/,
      );
      expect(() => statSync(devKekPath({ dataDir }))).toThrow();
    }
  });

  test("a lost development KEK while master keys exist is refused, naming the file and the KEK the keys need; nothing is created", () => {
    const dataDir = tempDir();
    const c = capture();
    expect(() =>
      resolveKek({ kek: undefined, isProduction: false, dataDir }, c.log, c.err, { wrappedBy: ["0123456789abcdef"] }),
    ).toThrow(
      /^the development KEK file .*dev-kek is missing, but master_keys holds keys wrapped by KEK 0123456789abcdef: .*restore/,
    );
    expect(() => statSync(devKekPath({ dataDir }))).toThrow();
    // With no master keys yet, a first start still creates one.
    expect(resolveKek({ kek: undefined, isProduction: false, dataDir }, c.log, c.err, { wrappedBy: [] }).source).toBe(
      "dev-file",
    );
  });
});
