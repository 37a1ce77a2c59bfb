/** KEK resolution: env KEK, clear refusals, the development KEK file (created once, announced, never in production). */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kekFingerprint, parseKek } from "../../src/crypto/index.ts";
import { ConfigError } from "../../src/errors.ts";
import { createLogger } from "../../src/log.ts";
import { devKekPath, resolveKek, resolvePreviousKek } from "../../src/keys/kek.ts";
import { TEST_KEK } from "../support/app.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
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
      ["zz!" + "a".repeat(40), /neither hex nor base64/],
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
    expect(first.stderr.join("\n")).toMatch(/WARNING: USING A DEVELOPMENT KEK .*just created.*MASTER_KEY_ENCRYPTION_KEY/);
    expect(first.logs.some((l) => JSON.parse(l).level === "warn" && JSON.parse(l).msg.includes("DEVELOPMENT KEK"))).toBe(true);

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
    expect(() => resolveKek({ kek: undefined, isProduction: false, dataDir }, capture().log, () => {})).toThrow(/development KEK file .* is not 64 lowercase hex/);
  });

  test("resolvePreviousKek names its own variable", () => {
    expect(() => resolvePreviousKek({ kekPrevious: undefined })).toThrow(/MASTER_KEY_ENCRYPTION_KEY_PREVIOUS is not set/);
    expect(() => resolvePreviousKek({ kekPrevious: "short" })).toThrow(/^MASTER_KEY_ENCRYPTION_KEY_PREVIOUS /);
    expect(resolvePreviousKek({ kekPrevious: TEST_KEK }).kekId).toBe(kekFingerprint(parseKek(TEST_KEK)));
  });
});
