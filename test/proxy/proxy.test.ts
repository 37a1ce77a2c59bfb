/**
 * The token proxy against a fake provider API on 127.0.0.1 that checks the bearer, on both
 * databases: calls go through with the token injected, a proxy-only key cannot read the token,
 * every way of reaching another host is refused, one refresh-and-retry on a 401, size limits,
 * purpose required by policy, and one TOKEN_PROXIED audit row per call with no token in it.
 */
import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { startFakeOAuth, type FakeOAuth } from "../support/fake-oauth.ts";
import { auditRows, callApi, toJson, tokenTestApp, type TokenTestApp } from "../tokens/helpers.ts";
import { isPrivateAddress } from "../../src/proxy/address.ts";
import { buildTarget, pathTemplate } from "../../src/proxy/target.ts";

async function proxyKey(a: TokenTestApp, requesterId: string): Promise<string> {
  const r = (await (await a.call(a.admin, "POST", "/v1/requesters", { requesterId, name: requesterId })).json()) as {
    id: string;
  };
  const k = (await (await a.call(a.admin, "POST", `/v1/requesters/${r.id}/api-keys`, { roles: ["proxy"] })).json()) as {
    apiKey: string;
  };
  expect(
    (
      await a.call(a.admin, "POST", "/v1/policies", {
        name: `wl-${requesterId}`,
        type: "whitelist",
        config: { requesters: [requesterId] },
      })
    ).status,
  ).toBe(201);
  return k.apiKey;
}

describeEachDb("token proxy", (h) => {
  let a: TokenTestApp;
  let fake: FakeOAuth;
  let proxy: string;
  beforeAll(async () => {
    fake = startFakeOAuth();
    fake.accepted.add("gh-access-1");
    a = await tokenTestApp(h.db, {
      env: {
        GITHUB_API_BASE: `${fake.origin}/api`,
        GITHUB_CLIENT_ID: fake.clientId,
        GITHUB_CLIENT_SECRET: fake.clientSecret,
        GITHUB_TOKEN_URL: fake.url,
        PROXY_MAX_REQUEST_BYTES: "4096",
        PROXY_MAX_RESPONSE_BYTES: "8192",
      },
    });
    proxy = await proxyKey(a, `svc-proxy-${Math.random().toString(36).slice(2, 8)}`);
    expect(
      (
        await a.call(a.writer, "PUT", "/v1/tokens/github/u1", {
          accessToken: "gh-access-1",
          refreshToken: "gh-refresh-1",
        })
      ).status,
    ).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await a?.close();
    await fake?.stop();
  });
  beforeEach(() => {
    fake.apiCalls.length = 0;
    fake.calls.length = 0;
  });

  const through = (
    path: string,
    init: { method?: string; body?: string; headers?: Record<string, string>; key?: string } = {},
  ) =>
    a.t.app.request(path, {
      method: init.method ?? "GET",
      headers: { authorization: `Bearer ${init.key ?? proxy}`, ...init.headers },
      ...(init.body !== undefined ? { body: init.body } : {}),
    });

  test("GET goes through with the stored token as bearer; the caller's credentials, cookies and hop-by-hop headers do not", async () => {
    const res = await through("/v1/proxy/github/u1/user/repos?per_page=5&sort=updated", {
      headers: {
        cookie: "session=1",
        "x-forwarded-for": "10.0.0.1",
        connection: "x-secret",
        "x-secret": "1",
        "x-custom": "kept",
        "proxy-authorization": "Basic eA==",
        "x-purpose": "sync",
      },
    });
    expect(res.status).toBe(200);
    expect((await res.json()) as object).toMatchObject({
      ok: true,
      method: "GET",
      path: "/api/user/repos",
      search: "?per_page=5&sort=updated",
    });
    expect(res.headers.get("set-cookie")).toBeNull();
    expect(res.headers.get("x-provider")).toBe("fake");
    const seen = fake.apiCalls.at(-1)!;
    expect(seen.authorization).toBe("Bearer gh-access-1");
    expect(Object.keys(seen.headers)).not.toEqual(expect.arrayContaining(["cookie"]));
    for (const gone of ["cookie", "x-forwarded-for", "x-secret", "proxy-authorization", "x-purpose"])
      expect(seen.headers[gone]).toBeUndefined();
    expect(seen.headers["x-custom"]).toBe("kept");
  });

  test("POST body goes through; a body over PROXY_MAX_REQUEST_BYTES is 413 (declared or streamed)", async () => {
    const res = await through("/v1/proxy/github/u1/repos", {
      method: "POST",
      body: JSON.stringify({ name: "r" }),
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(201);
    expect((await res.json()) as object).toMatchObject({
      method: "POST",
      path: "/api/repos",
      received: JSON.stringify({ name: "r" }).length,
    });
    expect(fake.apiCalls.at(-1)!.headers["content-type"]).toBe("application/json");
    const big = await through("/v1/proxy/github/u1/repos", { method: "POST", body: "x".repeat(5000) });
    expect(big.status).toBe(413);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(1000));
        c.close();
      },
    });
    const streamed = await a.t.app.request("/v1/proxy/github/u1/repos", {
      method: "POST",
      headers: { authorization: `Bearer ${proxy}` },
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
  });

  test("a response over PROXY_MAX_RESPONSE_BYTES is refused (502)", async () => {
    expect((await through("/v1/proxy/github/u1/big?n=100")).status).toBe(200);
    const res = await through("/v1/proxy/github/u1/big?n=10000");
    expect(res.status).toBe(502);
  });

  test("a proxy-only key cannot read, export or list the token; a reader cannot proxy", async () => {
    for (const path of [
      "/v1/tokens/github/u1",
      "/v1/tokens/github/u1/status",
      "/v1/tokens/github/u1/export",
      "/v1/tokens",
    ]) {
      const res = await callApi(a.t, proxy, "GET", path);
      expect({ path, status: res.status }).toEqual({ path, status: 403 });
      expect(await res.text()).not.toContain("gh-access-1");
    }
    expect((await through("/v1/proxy/github/u1/user", { key: a.reader })).status).toBe(403);
    expect(fake.apiCalls).toHaveLength(0);
  });

  test("a requester no policy admits is denied like a read: 403 ACCESS_DENIED, nothing sent upstream", async () => {
    const r = (await (
      await a.call(a.admin, "POST", "/v1/requesters", { requesterId: "svc-proxy-stranger", name: "x" })
    ).json()) as { id: string };
    const k = (await (
      await a.call(a.admin, "POST", `/v1/requesters/${r.id}/api-keys`, { roles: ["proxy"] })
    ).json()) as { apiKey: string };
    const res = await through("/v1/proxy/github/u1/user", { key: k.apiKey });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("ACCESS_DENIED");
    expect(fake.apiCalls).toHaveLength(0);
  });

  test.each([
    ["scheme-relative", "/v1/proxy/github/u1//127.0.0.2/x"],
    ["absolute URL", "/v1/proxy/github/u1/http://127.0.0.2/x"],
    ["encoded slashes", "/v1/proxy/github/u1/%2F%2F127.0.0.2%2Fx"],
    ["encoded slash in a segment", "/v1/proxy/github/u1/user%2F..%2F..%2Fadmin"],
    ["encoded dots", "/v1/proxy/github/u1/user/%2e%2e%2fadmin"],
    ["encoded backslash", "/v1/proxy/github/u1/%5C%5C127.0.0.2"],
    ["trailing empty path", "/v1/proxy/github/u1/"],
    ["userinfo-looking segment", "/v1/proxy/github/u1/@127.0.0.2//x"],
  ])("%s is refused before anything is sent (%s)", async (_name, path) => {
    const res = await through(path);
    expect(res.status).toBe(400);
    expect(fake.apiCalls).toHaveLength(0);
  });

  test("dot segments the URL parser removes never leave the API base either", async () => {
    for (const path of [
      "/v1/proxy/github/u1/../../../x",
      "/v1/proxy/github/u1/a/%2e%2e/%2e%2e/%2e%2e/x",
      "/v1/proxy/github/u1/..\\..\\x",
    ]) {
      const res = await through(path);
      expect(res.status).toBeGreaterThanOrEqual(400);
    }
    expect(fake.apiCalls.every((c) => c.path.startsWith("/api/"))).toBe(true);
  });

  test("a redirect to another host is not followed (502); a same-origin one is handed back, not followed", async () => {
    const away = await through("/v1/proxy/github/u1/redirect-away");
    expect(away.status).toBe(502);
    expect(fake.apiCalls.map((c) => c.path)).toEqual(["/api/redirect-away"]);
    const here = await through("/v1/proxy/github/u1/redirect-here");
    expect(here.status).toBe(302);
    expect(here.headers.get("location")).toBe("/api/user");
    expect(fake.apiCalls.map((c) => c.path)).toEqual(["/api/redirect-away", "/api/redirect-here"]);
  });

  test("a 401 from the API: one forced refresh, one retry with the new token", async () => {
    expect(
      (
        await a.call(a.writer, "PUT", "/v1/tokens/github/u-stale", {
          accessToken: "revoked-at-provider",
          refreshToken: "gh-refresh-2",
        })
      ).status,
    ).toBe(201);
    fake.behaviour = { kind: "ok" };
    const res = await through("/v1/proxy/github/u-stale/user");
    expect(res.status).toBe(200);
    expect(fake.calls).toHaveLength(1);
    expect(fake.apiCalls.map((c) => c.authorization)).toEqual([
      "Bearer revoked-at-provider",
      `Bearer ${fake.issued.at(-1)}`,
    ]);
    const row = (await auditRows(h.db, "TOKEN_PROXIED")).filter((r) => r.target === "token:github:u-stale").at(-1)!;
    expect(row.details).toMatchObject({ status: 200, retried: true });
    // A refresh that fails: the provider's 401 is handed back, one upstream API call, no loop.
    fake.apiCalls.length = 0;
    fake.behaviour = { kind: "invalid_grant" };
    expect(
      (await a.call(a.writer, "PUT", "/v1/tokens/github/u-dead", { accessToken: "dead", refreshToken: "gh-refresh-3" }))
        .status,
    ).toBe(201);
    const dead = await through("/v1/proxy/github/u-dead/user");
    expect(dead.status).toBe(401);
    expect(fake.apiCalls).toHaveLength(1);
    fake.behaviour = { kind: "ok" };
  });

  test("one TOKEN_PROXIED row per call: method, path template, status; never the token, query or body", async () => {
    const before = (await auditRows(h.db, "TOKEN_PROXIED")).length;
    await through("/v1/proxy/github/u1/repos/alice@example.com/12345/issues?q=secret-query", { method: "GET" });
    await through("/v1/proxy/github/u1/repos", { method: "POST", body: "secret-body" });
    const rows = (await auditRows(h.db, "TOKEN_PROXIED")).slice(before);
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.details)).toMatchObject([
      { method: "GET", path: "/repos/{id}/{id}/issues", status: 200, provider: "GITHUB" },
      { method: "POST", path: "/repos", status: 201 },
    ]);
    const all = toJson(await h.db.prisma.auditLog.findMany());
    for (const s of ["gh-access-1", "secret-query", "secret-body", "alice@example.com"]) expect(all).not.toContain(s);
  });

  test("purpose required by policy applies to proxied calls as to reads", async () => {
    const p = (await (
      await a.call(a.admin, "POST", "/v1/policies", {
        name: "purpose-needed",
        type: "purpose",
        config: { allowed: ["sync"] },
      })
    ).json()) as { id: string };
    try {
      expect((await through("/v1/proxy/github/u1/user")).status).toBe(403);
      expect((await through("/v1/proxy/github/u1/user", { headers: { "x-purpose": "sync" } })).status).toBe(200);
      expect((await through("/v1/proxy/github/u1/user", { headers: { "x-purpose": "x".repeat(2000) } })).status).toBe(
        400,
      );
    } finally {
      await a.call(a.admin, "DELETE", `/v1/policies/${p.id}`);
    }
  });
});

describeEachDb("token proxy: a public base resolving to a private address", (h) => {
  let a: TokenTestApp;
  let proxy: string;
  const lookups: string[] = [];
  beforeAll(async () => {
    // No GITHUB_API_BASE: the built-in https://api.github.com, which "DNS" points at loopback.
    a = await tokenTestApp(h.db, {
      resolve: async (host) => {
        lookups.push(host);
        return ["127.0.0.1"];
      },
    });
    proxy = await proxyKey(a, "svc-proxy-dns");
    expect((await a.call(a.writer, "PUT", "/v1/tokens/github/u1", { accessToken: "gh-access-dns" })).status).toBe(201);
  }, 60_000);
  afterAll(async () => a?.close());

  test("refused with 502 before any connection, and audited as refused", async () => {
    const res = await a.t.app.request("/v1/proxy/github/u1/user", { headers: { authorization: `Bearer ${proxy}` } });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain("non-public address");
    expect(lookups).toEqual(["api.github.com"]);
    const row = (await auditRows(h.db, "TOKEN_PROXIED")).at(-1)!;
    expect(row.details).toMatchObject({ refused: "private-address", status: null });
    expect(row.success).toBe(false);
  });

  test("an integration without an API base (generic OAuth2, none configured) is a 400", async () => {
    const res = await a.t.app.request("/v1/proxy/acme/u1/user", { headers: { authorization: `Bearer ${proxy}` } });
    expect(res.status).toBe(400);
  });
});

test("private ranges: loopback, RFC 1918, link-local, CGNAT, IPv6 loopback/ULA/link-local, v4-mapped; public addresses pass", () => {
  for (const ip of [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "::1",
    "::",
    "fd00::1",
    "fe80::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "64:ff9b::a00:1",
    "224.0.0.1",
  ]) {
    expect({ ip, private: isPrivateAddress(ip) }).toEqual({ ip, private: true });
  }
  for (const ip of ["140.82.112.6", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"]) {
    expect({ ip, private: isPrivateAddress(ip) }).toEqual({ ip, private: false });
  }
});

test("targets stay below the base; path templates hide identifiers", () => {
  expect(buildTarget("https://api.github.com", "user/repos", "?a=1").href).toBe(
    "https://api.github.com/user/repos?a=1",
  );
  expect(buildTarget("http://127.0.0.1:9/api", "x", "").href).toBe("http://127.0.0.1:9/api/x");
  expect(() => buildTarget("https://api.github.com", "a//b", "")).toThrow();
  expect(() => buildTarget("https://api.github.com", "a/../b", "")).toThrow();
  expect(pathTemplate("gmail/v1/users/me/messages/18c2ab")).toBe("/gmail/v1/users/me/messages/{id}");
  expect(pathTemplate("v1.0/me/messages")).toBe("/v1.0/me/messages");
});
