/** The OpenAPI document is valid 3.1, describes every route, and /docs serves Swagger UI offline. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createTestDatabase, type TestDatabase } from "../support/databases.ts";
import { asAdmin, startTestApp, type TestApp } from "../support/app.ts";
import { ROLES } from "../../src/access/principal.ts";

let db: TestDatabase;
let t: TestApp;
beforeAll(async () => {
  db = await createTestDatabase("pglite");
  // Every documented operation is called once without a key: keep the failure limiter out of the way.
  t = await startTestApp(db, { env: { AUTH_FAILURES_PER_MINUTE: "100000" } });
}, 60_000);
afterAll(async () => {
  await t.close();
  await db.close();
});

const json = (method: string, body: unknown): RequestInit =>
  asAdmin({ method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const authAs = (key: string): RequestInit => ({ headers: { authorization: `Bearer ${key}` } });

async function document() {
  const res = await t.app.request("/openapi.json");
  expect(res.status).toBe(200);
  return (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
}

test("GET /openapi.json validates as OpenAPI 3.1", async () => {
  const doc = await document();
  expect(doc.openapi).toBe("3.1.0");
  const result = await new Validator().validate(doc as never);
  if (!result.valid) console.error(JSON.stringify(result.errors, null, 2));
  expect(result.valid).toBe(true);
});

test("every route the app serves is described by the document", async () => {
  const doc = await document();
  const documented = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item))
      documented.add(`${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ":$1")}`);
  }
  const undocumented = new Set<string>();
  for (const r of t.app.routes) {
    if (r.method === "ALL") continue; // middleware
    if (r.path === "/openapi.json" || r.path.startsWith("/docs")) continue; // the documentation itself
    // A trailing wildcard (the proxy's provider path) is documented as a {path} parameter.
    const key = `${r.method} ${r.path.replace(/\/\*$/, "/:path")}`;
    if (!documented.has(key)) undocumented.add(key);
  }
  expect([...undocumented]).toEqual([]);
});

test("the documented security matches what the app enforces: 401 without a key, 403 for a role it lacks", async () => {
  // Asserting the document alone would check only what the builder adds to every operation; ask
  // the running app instead, once per documented operation, with no key and with one key per role.
  const keys: Record<string, string> = {};
  for (const role of ROLES) {
    const r = await t.app.request("/v1/requesters", json("POST", { requesterId: `openapi-${role}`, name: role }));
    expect(r.status).toBe(201);
    const { id } = (await r.json()) as { id: string };
    const k = await t.app.request(`/v1/requesters/${id}/api-keys`, json("POST", { roles: [role] }));
    expect(k.status).toBe(201);
    keys[role] = ((await k.json()) as { apiKey: string }).apiKey;
  }
  const doc = await document();
  const mismatches: string[] = [];
  let secured = 0;
  for (const [path, item] of Object.entries(doc.paths)) {
    const concrete = path.replace(/\{[^}]+\}/g, "x");
    for (const [method, op] of Object.entries(item) as [string, { security?: unknown; responses: object }][]) {
      const documented = Array.isArray(op.security) && op.security.length > 0;
      const anonymous = await t.app.request(concrete, { method: method.toUpperCase() });
      if (documented !== (anonymous.status === 401))
        mismatches.push(`${method} ${path}: documented ${documented ? "secured" : "public"}, got ${anonymous.status}`);
      if (!documented) continue;
      secured++;
      expect(op.security).toEqual([{ apiKey: [] }]);
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["401", "403"]));
      let forbidden = false;
      for (const role of ROLES) {
        const res = await t.app.request(concrete, { method: method.toUpperCase(), ...authAs(keys[role]!) });
        if (res.status === 403) forbidden = true;
      }
      if (!forbidden) mismatches.push(`${method} ${path}: documents 403 but every role got past the role check`);
    }
  }
  expect(secured).toBeGreaterThan(30);
  expect(mismatches).toEqual([]);
});

test("GET /docs serves Swagger UI with local assets", async () => {
  const page = await t.app.request("/docs");
  expect(page.status).toBe(200);
  const html = await page.text();
  expect(html).toContain("/docs/assets/swagger-ui-bundle.js");
  expect(html).not.toMatch(/https?:\/\//);
  const bundle = await t.app.request("/docs/assets/swagger-ui-bundle.js");
  expect(bundle.status).toBe(200);
  expect((await t.app.request("/docs/assets/..%2Fpackage.json")).status).toBe(404);
  // Names of Object.prototype are not assets either.
  expect((await t.app.request("/docs/assets/constructor")).status).toBe(404);
});
