/**
 * Role × route matrix: every authenticated route refuses a missing key (401), a wrong role (403),
 * a disabled key (401) and an expired key (401), and admits the right role. `roles` is the set of
 * roles that must be admitted. A test below fails when the app serves a /v1 operation this table
 * does not cover, so a new route cannot skip the matrix.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, type AccessHarness } from "./support.ts";
import { ROLES, type Role } from "../../src/access/principal.ts";

const UUID = "00000000-0000-7000-8000-000000000000";

interface RouteCase {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  roles: Role[];
  body?: unknown;
}

const ROUTES: RouteCase[] = [
  { method: "GET", path: "/v1/requesters", roles: ["admin"] },
  { method: "POST", path: "/v1/requesters", roles: ["admin"], body: {} },
  { method: "GET", path: `/v1/requesters/${UUID}`, roles: ["admin"] },
  { method: "PATCH", path: `/v1/requesters/${UUID}`, roles: ["admin"], body: { name: "x" } },
  { method: "DELETE", path: `/v1/requesters/${UUID}`, roles: ["admin"] },
  { method: "POST", path: `/v1/requesters/${UUID}/api-keys`, roles: ["admin"], body: { roles: ["reader"] } },
  { method: "DELETE", path: `/v1/requesters/${UUID}/api-keys/aaaaaaaaaaaaaaaa`, roles: ["admin"] },
  { method: "GET", path: "/v1/policies", roles: ["admin"] },
  { method: "POST", path: "/v1/policies", roles: ["admin"], body: {} },
  { method: "POST", path: "/v1/policies/simulate", roles: ["admin"], body: {} },
  { method: "GET", path: "/v1/policies/types", roles: ["admin"] },
  { method: "GET", path: `/v1/policies/${UUID}`, roles: ["admin"] },
  { method: "PATCH", path: `/v1/policies/${UUID}`, roles: ["admin"], body: { priority: 1 } },
  { method: "DELETE", path: `/v1/policies/${UUID}`, roles: ["admin"] },
  { method: "GET", path: "/v1/access-requests", roles: ["admin"] },
  { method: "POST", path: "/v1/access-requests", roles: ["reader"], body: {} },
  // Guarded by path for routers of other areas (src/http/access-rules.ts).
  { method: "GET", path: "/v1/keys", roles: ["admin"] },
  { method: "POST", path: "/v1/keys/rotate", roles: ["admin"] },
  { method: "GET", path: "/v1/keys/schedule", roles: ["admin"] },
  { method: "PUT", path: "/v1/keys/schedule", roles: ["admin"], body: {} },
  { method: "GET", path: "/metrics", roles: ["admin"] },
  { method: "GET", path: "/v1/audit-logs", roles: ["admin"] },
  { method: "GET", path: "/v1/audit-logs/stats", roles: ["admin"] },
  { method: "GET", path: "/v1/audit-logs/verify", roles: ["admin"] },
  { method: "GET", path: "/v1/audit-logs/head", roles: ["admin"] },
  { method: "GET", path: "/v1/tokens", roles: ["reader"] },
  { method: "GET", path: "/v1/tokens/gmail/u1/status", roles: ["reader"] },
  { method: "PUT", path: "/v1/tokens/gmail/u1", roles: ["writer"], body: {} },
  { method: "GET", path: "/v1/tokens/gmail/u1", roles: ["reader"] },
  { method: "GET", path: "/v1/tokens/gmail/u1/export", roles: ["exporter"] },
  { method: "DELETE", path: "/v1/tokens/gmail/u1", roles: ["writer"] },
  { method: "DELETE", path: "/v1/users/u1/tokens", roles: ["writer"] },
  { method: "GET", path: "/v1/webhooks", roles: ["admin"] },
  { method: "POST", path: "/v1/webhooks", roles: ["admin"], body: {} },
  { method: "GET", path: `/v1/webhooks/${UUID}/deliveries`, roles: ["admin"] },
  { method: "DELETE", path: `/v1/webhooks/${UUID}`, roles: ["admin"] },
  { method: "GET", path: "/v1/proxy/github/u1/user", roles: ["proxy"] },
  { method: "POST", path: "/v1/proxy/github/u1/repos", roles: ["proxy"], body: {} },
  { method: "PUT", path: "/v1/proxy/github/u1/user", roles: ["proxy"], body: {} },
  { method: "PATCH", path: "/v1/proxy/github/u1/user", roles: ["proxy"], body: {} },
  { method: "DELETE", path: "/v1/proxy/github/u1/user", roles: ["proxy"] },
  // Not a known route: fail closed (admin), and non-canonical spellings land there too.
  { method: "GET", path: "/v1/unknown", roles: ["admin"] },
  { method: "GET", path: "/v1//requesters", roles: ["admin"] },
];

const PUBLIC = [
  "/healthz",
  "/readyz",
  "/openapi.json",
  "/.well-known/jwks.json",
  "/v1/time-slices/1/public-key",
  "/v1/keys/endorsements",
];

describeEachDb("role × route matrix", (h) => {
  let x: AccessHarness;
  const keys = {} as Record<Role | "disabled" | "expired", string>;
  beforeAll(async () => {
    // The per-address failure limit is tested on its own; here every refusal must be a 401.
    x = await accessHarness(h.db, { env: { AUTH_FAILURES_PER_MINUTE: "100000" } });
    for (const r of ROLES) keys[r] = (await x.makeKey([r])).apiKey;
    const all: Role[] = ["admin", "writer", "reader"];
    const disabled = await x.makeKey(all);
    await x.access.apiKeys.revoke(disabled.requesterUuid, disabled.keyId, "test");
    keys.disabled = disabled.apiKey;
    const expired = await x.makeKey(all, { expiresAt: x.clock.now() + 1000 });
    keys.expired = expired.apiKey;
    x.clock.advance(2000);
  });
  afterAll(async () => x?.close());

  const call = (r: RouteCase, key?: string) =>
    x.app.request(r.path, {
      method: r.method,
      headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
      ...(r.body !== undefined ? { body: JSON.stringify(r.body) } : {}),
    });

  for (const r of ROUTES) {
    test(`${r.method} ${r.path} needs ${r.roles.join("|")}`, async () => {
      const none = await call(r);
      expect(none.status).toBe(401);
      expect(((await none.json()) as { error: { message: string } }).error.message).toBe("missing or invalid API key");
      expect((await call(r, keys.disabled)).status).toBe(401);
      expect((await call(r, keys.expired)).status).toBe(401);
      for (const role of ROLES) {
        const res = await call(r, keys[role]);
        const code = res.status >= 400 ? ((await res.json()) as { error?: { code?: string } }).error?.code : undefined;
        if (r.roles.includes(role)) {
          // Past the role check; a policy may still deny a data read (403 ACCESS_DENIED), never the role.
          expect([401, 429]).not.toContain(res.status);
          expect(code).not.toBe("FORBIDDEN");
        } else {
          expect({ status: res.status, code }).toEqual({ status: 403, code: "FORBIDDEN" });
        }
      }
    });
  }

  test("public routes need no key", async () => {
    for (const path of PUBLIC) expect([401, 403]).not.toContain((await x.app.request(path)).status);
  });

  test("the matrix covers every operation the app serves under /v1", () => {
    const served = x.app.routes.filter((r) => r.method !== "ALL" && r.path.startsWith("/v1/"));
    const missing = served
      .filter((r) => {
        const pattern = new RegExp(`^${r.path.replace(/:[^/]+/g, "[^/]+").replace(/\/\*$/, "/.+")}$`);
        const concrete = ROUTES.some((c) => c.method === r.method && pattern.test(c.path));
        const isPublic = r.method === "GET" && PUBLIC.some((p) => pattern.test(p));
        return !concrete && !isPublic;
      })
      .map((r) => `${r.method} ${r.path}`);
    expect([...new Set(missing)]).toEqual([]);
  });
});
