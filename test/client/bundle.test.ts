/**
 * The built SDK bundle (what `bun run build:client` ships) holds the client, the pure crypto layer
 * (the one WebCrypto ECDH-ES implementation, so it also builds for browsers), noble and jose's JWS
 * verification (slice-key statements) but none of jose's JWE code, and nothing of
 * the server: the wire types are type-only imports of the route schemas, erased at build time. Every error class the bundled code of ours throws is
 * exported by the SDK, so callers can tell failures apart with `instanceof` and `code`.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../../src/db/migration-files.ts";
import * as sdk from "../../src/client/index.ts";

const build = await Bun.build({ entrypoints: [join(projectRoot, "src/client/index.ts")], target: "node" });
const text = build.success ? await build.outputs[0]!.text() : "";
/** Bun marks where each module's code starts with a `// <path>` line. */
const modules = [...new Set([...text.matchAll(/^\/\/ ((?:src|node_modules)\/\S+)$/gm)].map((m) => m[1]!))];

test("the client bundle builds and holds only the client, the crypto layer, jose's JWS verify and noble", () => {
  expect(build.success).toBe(true);
  expect(modules).toContain("src/client/api.ts");
  // The service's own JWE implementation: time-slice envelopes and sealed grants alike.
  expect(modules).toContain("src/crypto/ecdh-es.ts");
  expect(modules).toContain("src/crypto/envelope.ts");
  expect(
    modules.filter(
      (m) => m.startsWith("node_modules/jose/") && /\/jwe\/|jwe_|content_encryption|key_management/.test(m),
    ),
  ).toEqual([]);
  // WebCrypto only: no node:crypto or any other Node built-in.
  expect(text).not.toMatch(/from\s*"node:|require\("node:/);
  const allowed = /^(src\/client\/|src\/crypto\/|node_modules\/jose\/|node_modules\/@noble\/(hashes|curves)\/)/;
  expect(modules.filter((m) => !allowed.test(m))).toEqual([]);
  for (const server of [
    "src/http",
    "src/db",
    "src/access",
    "src/tokens",
    "src/keys",
    "@prisma",
    "prisma",
    "node_modules/pg",
    "hono",
    "zod",
  ]) {
    expect(text).not.toContain(server);
  }
});

test("the SDK builds for browsers too (WebCrypto, no Node built-ins)", async () => {
  const browser = await Bun.build({ entrypoints: [join(projectRoot, "src/client/index.ts")], target: "browser" });
  expect(browser.logs.map(String)).toEqual([]);
  expect(browser.success).toBe(true);
});

test("the client bundle's size is sane", () => {
  // 173 KB with jose's JWE and JWS parts; 150 KB once sealed grants opened with our own ECDH-ES
  // (noble's P-256 is most of it).
  expect(text.length).toBeGreaterThan(50_000);
  expect(text.length).toBeLessThan(200_000);
});

test("every error class our bundled code throws is exported by the SDK, with a stable code", () => {
  const builtins = new Set(["Error", "TypeError", "RangeError"]);
  const thrown = new Set<string>();
  for (const m of modules.filter((m) => m.startsWith("src/"))) {
    const source = readFileSync(join(projectRoot, m), "utf8");
    for (const [, name] of source.matchAll(/\bnew ([A-Z]\w*Error)\(/g)) thrown.add(name!);
  }
  expect(thrown).toContain("DecryptionFailedError");
  expect(thrown).toContain("OutsideGrantError");
  const exported = sdk as Record<string, unknown>;
  const missing = [...thrown].filter((n) => !builtins.has(n) && typeof exported[n] !== "function");
  expect(missing).toEqual([]);
  for (const name of [...thrown].filter((n) => !builtins.has(n) && n !== "AccessDeniedError")) {
    const Cls = exported[name] as new (...args: unknown[]) => Error & { code?: unknown };
    const err = name === "ChronoKmsError" ? new Cls(500, "X_CODE", "m") : new Cls("m");
    expect(err).toBeInstanceOf(Error);
    expect(typeof err.code).toBe("string");
  }
});
