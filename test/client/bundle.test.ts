/**
 * The built SDK bundle (what `bun run build:client` ships) holds the client, the pure crypto layer
 * (its WebCrypto envelope, so it also builds for browsers) and its two libraries, and nothing of
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

test("the client bundle builds and holds only the client, the crypto layer, jose and noble", () => {
  expect(build.success).toBe(true);
  expect(modules).toContain("src/client/api.ts");
  expect(modules).toContain("src/crypto/envelope-web.ts");
  // WebCrypto only: no node:crypto (the service's envelope.ts) or any other Node built-in.
  expect(modules).not.toContain("src/crypto/envelope.ts");
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
  // 173 KB when this was written (jose's JWE/JWS parts and noble's P-256 are most of it).
  expect(text.length).toBeGreaterThan(50_000);
  expect(text.length).toBeLessThan(300_000);
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
