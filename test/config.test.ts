/** Configuration: one parse, clear one-line errors, and documentation that cannot drift. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CONFIG_VARIABLES, loadConfig } from "../src/config.ts";
import { ConfigError } from "../src/errors.ts";
import { projectRoot } from "../src/db/migration-files.ts";

test("every variable the config reads is in .env.example and in the README's table", () => {
  const example = readFileSync(join(projectRoot, ".env.example"), "utf8");
  const readme = readFileSync(join(projectRoot, "README.md"), "utf8");
  for (const name of CONFIG_VARIABLES) {
    expect({ name, inExample: new RegExp(`^#? ?${name}=`, "m").test(example) }).toEqual({ name, inExample: true });
    const provider = /^(GOOGLE|MICROSOFT|GITHUB|OAUTH2)_/.exec(name)?.[1];
    expect({ name, inReadme: readme.includes(provider ? `\`${provider}_*\`` : `\`${name}\``) }).toEqual({
      name,
      inReadme: true,
    });
  }
});

test("defaults: embedded PGlite under DATA_DIR, port 3000 on loopback", () => {
  const c = loadConfig({});
  expect(c.database).toEqual({ kind: "pglite", dataDir: ".data/pglite" });
  expect([c.host, c.port]).toEqual(["127.0.0.1", 3000]);
  expect(loadConfig({ DATABASE_URL: "memory://" }).database).toEqual({ kind: "pglite", dataDir: null });
  expect(loadConfig({ DATABASE_URL: "postgres://u@h:5432/d" }).database).toEqual({
    kind: "postgres",
    url: "postgres://u@h:5432/d",
  });
});

test.each([
  [{ PORT: "70000" }, /^PORT: /],
  [{ DATABASE_URL: "postgres:///nohost" }, /^DATABASE_URL: has no host/],
  [{ MIGRATE_ON_START: "maybe" }, /^MIGRATE_ON_START: expected true or false/],
  [{ GOOGLE_CLIENT_ID: "id" }, /^GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET must be set together/],
  [{ OAUTH2_CLIENT_ID: "id", OAUTH2_CLIENT_SECRET: "s" }, /^OAUTH2_TOKEN_URL: required/],
  [{ GOOGLE_TOKEN_URL: "not a url" }, /^GOOGLE_TOKEN_URL: /],
])("%j is refused with a message naming the variable", (env, message) => {
  expect(() => loadConfig(env)).toThrow(ConfigError);
  expect(() => loadConfig(env)).toThrow(message);
});
