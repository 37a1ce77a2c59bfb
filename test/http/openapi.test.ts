/** The OpenAPI document is valid 3.1, describes every route, and /docs serves Swagger UI offline. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createTestDatabase, type TestDatabase } from "../support/databases.ts";
import { startTestApp, type TestApp } from "../support/app.ts";

let db: TestDatabase;
let t: TestApp;
beforeAll(async () => {
  db = await createTestDatabase("pglite");
  t = await startTestApp(db);
}, 60_000);
afterAll(async () => {
  await t.close();
  await db.close();
});

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

test("authenticated operations carry the bearer scheme and document 401/403", async () => {
  const doc = await document();
  for (const [path, item] of Object.entries(doc.paths)) {
    // Public /v1 routes (signed slice keys, key endorsements) declare no security instead.
    if (!path.startsWith("/v1/") || path.startsWith("/v1/time-slices/")) continue;
    if (path === "/v1/keys/endorsements") {
      expect((item as { get: { security?: unknown } }).get.security).toEqual([]);
      continue;
    }
    for (const op of Object.values(item) as { security?: unknown; responses: Record<string, unknown> }[]) {
      expect(op.security).toEqual([{ apiKey: [] }]);
      expect(op.responses["401"]).toBeDefined();
      expect(op.responses["403"]).toBeDefined();
    }
  }
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
});
