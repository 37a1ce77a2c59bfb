/**
 * Every ChronoKmsClient method against the real app on a real port: the paths, query parameters
 * and response shapes the SDK declares are the ones the routes serve, and both denial shapes
 * (time-slice body, token-read error body) come back as AccessDeniedError.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { AccessDeniedError, ChronoKmsClient, ChronoKmsError, DataSource, DataViewer } from "../../src/client/index.ts";
import { createTestDatabase, type TestDatabase } from "../support/databases.ts";
import { startTestApp, TEST_ADMIN_KEY, type TestApp } from "../support/app.ts";
import { startFakeOAuth } from "../support/fake-oauth.ts";

let db: TestDatabase;
let t: TestApp;
let admin: ChronoKmsClient;
const at = (apiKey?: string) => new ChronoKmsClient({ baseUrl: t.url, ...(apiKey ? { apiKey } : {}) });

beforeAll(async () => {
  db = await createTestDatabase("pglite");
  t = await startTestApp(db, { listen: true });
  admin = at(TEST_ADMIN_KEY);
}, 60_000);
afterAll(async () => {
  await t?.close();
  await db?.close();
});

test("health, JWKS and signed slice keys (no API key)", async () => {
  const anon = at();
  expect(await anon.health()).toEqual({ status: "ok" });
  expect((await anon.ready()).status).toBe("ready");
  const jwks = await anon.jwks();
  expect(jwks.keys[0]?.kid).toBe("1");
  const k = await anon.slicePublicKey("current", 1);
  const slice = Math.floor(Date.now() / 1000 / k.sliceSeconds);
  expect([slice, slice - 1]).toContain(k.slice); // `current` may have been asked a moment before a boundary
  expect(k).toMatchObject({ version: 1, kid: `1:${k.slice}`, status: "active" });
  expect(Date.parse(k.expiresAt) - Date.parse(k.issuedAt)).toBe(3600_000);
  expect((await anon.slicePublicKey(k.slice - 1, 1)).slice).toBe(k.slice - 1);
  expect(typeof k.from).toBe("string");
  expect(Date.parse(k.to) - Date.parse(k.from)).toBe(k.sliceSeconds * 1000);
});

test("administration: requesters, API keys, policies, simulate, keys, audit", async () => {
  const r = await admin.createRequester({ requesterId: "sdk-reader", name: "SDK reader", department: "ops" });
  expect(r.requesterId).toBe("sdk-reader");
  expect((await admin.getRequester(r.id)).apiKeys).toEqual([]);
  expect((await admin.updateRequester(r.id, { email: "reader@example.com" })).email).toBe("reader@example.com");
  expect((await admin.listRequesters({ requesterId: "sdk-reader" })).items.map((x) => x.id)).toEqual([r.id]);
  const key = await admin.createApiKey(r.id, { roles: ["reader"], name: "sdk" });
  expect(key.apiKey.startsWith(`ckms_${key.keyId}_`)).toBe(true);
  expect(key.key.roles).toEqual(["reader"]);

  const p = await admin.createPolicy({
    name: "sdk-whitelist",
    type: "whitelist",
    config: { requesters: ["sdk-reader"] },
  });
  expect((await admin.getPolicy(p.id)).version).toBe(p.version);
  expect((await admin.updatePolicy(p.id, { description: "from the SDK test" })).version).toBe(p.version + 1);
  expect((await admin.listPolicies()).items.some((x) => x.id === p.id)).toBe(true);
  const now = Date.now();
  const sim = await admin.simulate({
    requesterId: "sdk-reader",
    resource: { type: "timeslice" },
    timeRange: { start: now - 7200_000, end: now - 3600_000 },
  });
  expect(sim.granted).toBe(true);
  expect(sim.policyId).toBe(p.id);

  expect((await admin.keys()).versions[0]).toMatchObject({ version: 1, status: "active" });
  expect((await admin.keySchedule()).enabled).toBe(false);
  const schedule = await admin.setKeySchedule({ rotateEverySeconds: 86_400, enabled: true });
  expect(schedule).toMatchObject({ rotateEverySeconds: 86_400, retireAfterSeconds: null, enabled: true });
  expect((await admin.keys()).schedule.nextDueAt).toBe(schedule.nextDueAt);
  const page = await admin.auditLogs({ eventType: "POLICY_CREATED", limit: 5 });
  expect(page.items[0]?.target).toContain(p.id);
  expect((await admin.auditStats({ from: 0 })).byEventType.POLICY_CREATED).toBe(1);
  expect((await admin.verifyAudit()).valid).toBe(true);

  await admin.revokeApiKey(r.id, key.keyId);
  await expect(at(key.apiKey).jwks()).resolves.toMatchObject({ keys: [expect.any(Object)] }); // public route: no key needed
  const refused = await at(key.apiKey)
    .requestAccess({ resource: { type: "timeslice" }, timeRange: { start: now, end: now } })
    .catch((e) => e);
  expect(refused).toBeInstanceOf(ChronoKmsError);
  expect(refused.status).toBe(401);
  await admin.deleteRequester(r.id);
  await admin.deletePolicy(p.id);
  const gone = await admin.getPolicy(p.id).catch((e) => e);
  expect(gone).toMatchObject({ status: 404, code: "NOT_FOUND" });
}, 30_000);

test("time slices: grant → DataViewer; a denial is AccessDeniedError with the decision; listAccessRequests filters", async () => {
  const writer = await admin.createRequester({ requesterId: "sdk-writer", name: "w" });
  const reader = await admin.createRequester({ requesterId: "sdk-analyst", name: "a" });
  const stranger = await admin.createRequester({ requesterId: "sdk-stranger", name: "s" });
  const w = at((await admin.createApiKey(writer.id, { roles: ["writer"] })).apiKey);
  const a = at((await admin.createApiKey(reader.id, { roles: ["reader"] })).apiKey);
  const s = at((await admin.createApiKey(stranger.id, { roles: ["reader"] })).apiKey);
  await admin.createPolicy({ name: "sdk-analysts", type: "whitelist", config: { requesters: ["sdk-analyst"] } });

  const source = new DataSource({ client: a, masterKeys: (await a.jwks()).keys });
  // A whole slice back: the current slice reaches into the future, which no policy here allows.
  const ts = Date.now() - 3_600_000;
  const rec = await source.encrypt("21.5", { ctx: "sensor:1", timestamp: ts });
  const grant = await a.requestAccess({
    resource: { type: "timeslice" },
    timeRange: { start: ts, end: ts },
    purpose: "test",
  });
  const viewer = await DataViewer.fromGrant(grant);
  expect(await viewer.decryptToString(rec.jwe, { expectedCtx: "sensor:1" })).toBe("21.5");

  const denied = await s
    .requestAccess({ resource: { type: "timeslice" }, timeRange: { start: ts, end: ts } })
    .catch((e) => e);
  expect(denied).toBeInstanceOf(AccessDeniedError);
  expect({
    status: denied.status,
    code: denied.code,
    policyId: denied.policyId,
    reasonCode: denied.reasonCode,
  }).toMatchObject({ status: 403, code: "ACCESS_DENIED", reasonCode: "NOT_WHITELISTED" });
  expect(denied.accessRequestId).toMatch(/^[0-9a-f-]{36}$/);

  // A missing role is not a policy denial.
  const forbidden = await w
    .requestAccess({ resource: { type: "timeslice" }, timeRange: { start: ts, end: ts } })
    .catch((e) => e);
  expect(forbidden).toBeInstanceOf(ChronoKmsError);
  expect(forbidden).not.toBeInstanceOf(AccessDeniedError);
  expect(forbidden.code).toBe("FORBIDDEN");

  const list = await admin.listAccessRequests({
    requesterId: "sdk-stranger",
    granted: false,
    resourceType: "timeslice",
    from: ts - 1000,
  });
  expect(list.items.map((x) => x.id)).toEqual([denied.accessRequestId]);
}, 30_000);

test("tokens: put, get, status, list, export, token-read denial as AccessDeniedError, delete", async () => {
  const writer = await admin.createRequester({ requesterId: "tok-writer", name: "w" });
  const reader = await admin.createRequester({ requesterId: "tok-reader", name: "r" });
  const stranger = await admin.createRequester({ requesterId: "tok-stranger", name: "s" });
  const w = at((await admin.createApiKey(writer.id, { roles: ["writer"] })).apiKey);
  const r = at((await admin.createApiKey(reader.id, { roles: ["reader"] })).apiKey);
  const s = at((await admin.createApiKey(stranger.id, { roles: ["reader"] })).apiKey);
  await admin.createPolicy({
    name: "tok-readers",
    type: "whitelist",
    scope: { resourceTypes: ["token"] },
    config: { requesters: ["tok-reader"] },
  });

  const stored = await w.putToken("gmail", "u1", {
    accessToken: "ya29.a",
    refreshToken: "1//r",
    expiresAt: Date.now() + 3600_000,
    scope: "mail",
  });
  expect(stored.created).toBe(true);
  expect(stored.token).toMatchObject({ integration: "gmail", userId: "u1", hasRefreshToken: true, status: "valid" });
  expect((await w.putToken("gmail", "u1", { accessToken: "ya29.b" })).created).toBe(false);

  const read = await r.getToken("gmail", "u1", { refresh: "never", purpose: "sync" });
  expect(read).toMatchObject({ integration: "gmail", userId: "u1", accessToken: "ya29.b", refreshed: false });
  expect(read.hasRefreshToken).toBe(false);
  expect("refreshToken" in read).toBe(false);
  expect((await r.tokenStatus("gmail", "u1")).status).toBe("valid");
  expect((await r.listTokens({ userId: "u1", limit: 10 })).items).toHaveLength(1);

  const denied = await s.getToken("gmail", "u1").catch((e) => e);
  expect(denied).toBeInstanceOf(AccessDeniedError);
  expect({
    status: denied.status,
    code: denied.code,
    policyId: denied.policyId,
    reasonCode: denied.reasonCode,
  }).toMatchObject({ status: 403, code: "ACCESS_DENIED", reasonCode: "NOT_WHITELISTED" });
  expect(denied.accessRequestId).toMatch(/^[0-9a-f-]{36}$/);
  expect(denied.reason.length).toBeGreaterThan(0);
  expect(denied.requestId).toBeString();

  // Status and list are decisions too: the stranger is denied / sees nothing.
  expect(await s.tokenStatus("gmail", "u1").catch((e) => e)).toBeInstanceOf(AccessDeniedError);
  expect((await s.listTokens({ userId: "u1" })).items).toEqual([]);

  // Only an exporter key gets the refresh token.
  const e = at((await admin.createApiKey(reader.id, { roles: ["exporter"] })).apiKey);
  await w.putToken("gmail", "u2", { accessToken: "ya29.u2", refreshToken: "1//u2-refresh" });
  expect(await e.exportToken("gmail", "u2", { purpose: "migration" })).toMatchObject({
    integration: "gmail",
    userId: "u2",
    accessToken: "ya29.u2",
    refreshToken: "1//u2-refresh",
  });
  expect((await r.exportToken("gmail", "u2").catch((x) => x)).code).toBe("FORBIDDEN");
  await w.deleteToken("gmail", "u2");

  await w.putToken("github", "u1", { accessToken: "gho_x" });
  await w.deleteToken("gmail", "u1");
  expect((await r.tokenStatus("gmail", "u1").catch((e) => e)).status).toBe(404);
  expect(await w.deleteUserTokens("u1", { revoke: "best-effort" })).toEqual({
    deleted: 1,
    integrations: ["github"],
    revocations: [{ integration: "github", outcome: "unsupported", provider: "GITHUB" }],
  });
}, 30_000);

test("webhooks: create (secret once), list, deliveries, delete", async () => {
  const hook = await admin.createWebhook({
    url: "http://127.0.0.1:9/hook",
    events: ["token.deleted", "key.rotated"],
    description: "sdk",
  });
  expect(hook.secret).toStartWith("whsec_");
  expect(hook.events).toEqual(["token.deleted", "key.rotated"]);
  const listed = (await admin.listWebhooks()).items.find((x) => x.id === hook.id)!;
  expect(listed).toMatchObject({
    url: "http://127.0.0.1:9/hook",
    enabled: true,
    deliveries: { pending: 0, delivered: 0, failed: 0 },
  });
  expect(JSON.stringify(listed)).not.toContain(hook.secret);
  expect((await admin.webhookDeliveries(hook.id, { status: "pending", limit: 5 })).items).toEqual([]);
  await admin.deleteWebhook(hook.id);
  expect(((await admin.deleteWebhook(hook.id).catch((e) => e)) as ChronoKmsError).status).toBe(404);
});

test("proxy: the provider's answer comes back as a Response; chronokms refusals throw", async () => {
  const fake = startFakeOAuth();
  fake.accepted.add("gho_proxy");
  const t2 = await startTestApp(db, { listen: true, env: { GITHUB_API_BASE: `${fake.origin}/api` } });
  try {
    const sdk = (apiKey: string) => new ChronoKmsClient({ baseUrl: t2.url, apiKey });
    // Everything through the second app, whose policy cache sees its own changes at once.
    const admin = sdk(TEST_ADMIN_KEY);
    const app = await admin.createRequester({ requesterId: "sdk-proxy-app", name: "p" });
    const p = sdk((await admin.createApiKey(app.id, { roles: ["proxy"] })).apiKey);
    const wr = await admin.createRequester({ requesterId: "sdk-proxy-writer", name: "w" });
    const w = sdk((await admin.createApiKey(wr.id, { roles: ["writer"] })).apiKey);
    await admin.createPolicy({ name: "sdk-proxy", type: "whitelist", config: { requesters: ["sdk-proxy-app"] } });
    await w.putToken("github", "pu1", { accessToken: "gho_proxy" });
    const res = await p.proxy("github", "pu1", "user/repos", { query: { per_page: 2 }, purpose: "sync" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ path: "/api/user/repos", search: "?per_page=2" });
    const posted = await p.proxy("github", "pu1", "/repos", {
      method: "POST",
      body: JSON.stringify({ a: 1 }),
      headers: { "content-type": "application/json" },
    });
    expect(posted.status).toBe(201);
    // The provider's own 401 is a Response; a missing token is chronokms's 404 and throws.
    await w.putToken("github", "pu2", { accessToken: "unknown-to-provider" });
    expect((await p.proxy("github", "pu2", "user")).status).toBe(401);
    expect(((await p.proxy("github", "nobody", "user").catch((e) => e)) as ChronoKmsError).status).toBe(404);
    expect(((await p.getToken("github", "pu1").catch((e) => e)) as ChronoKmsError).status).toBe(403);
  } finally {
    await t2.close();
    await fake.stop();
  }
}, 30_000);

test("every list pages the same way: limit, an opaque cursor, { items, nextCursor }", async () => {
  for (const i of [1, 2]) await admin.createWebhook({ url: `http://127.0.0.1:9/paged-${i}`, events: ["key.rotated"] });
  const lists: Record<
    string,
    (q: { limit: number; cursor?: string }) => Promise<{ items: { id: string }[]; nextCursor: string | null }>
  > = {
    requesters: (q) => admin.listRequesters(q),
    accessRequests: (q) => admin.listAccessRequests(q),
    auditLogs: (q) => admin.auditLogs(q),
    webhooks: (q) => admin.listWebhooks(q),
  };
  for (const [name, list] of Object.entries(lists)) {
    const whole = await list({ limit: 200 });
    expect(whole.items.length, name).toBeGreaterThanOrEqual(2);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await list({ limit: 1, ...(cursor ? { cursor } : {}) });
      expect(page.items.length, name).toBeLessThanOrEqual(1);
      seen.push(...page.items.map((x) => x.id));
      if (page.nextCursor === null) break;
      expect(page.nextCursor, name).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(page.nextCursor, name).not.toContain(page.items[0]!.id);
      cursor = page.nextCursor;
    }
    expect(seen, name).toEqual(whole.items.map((x) => x.id).slice(0, seen.length));
    if (whole.nextCursor === null) expect(seen.length, name).toBe(whole.items.length);
    const bad = (await list({ limit: 1, cursor: "not-a-cursor" }).catch((e) => e)) as ChronoKmsError;
    expect(bad, name).toBeInstanceOf(ChronoKmsError);
    expect(bad.status, name).toBe(400);
  }
}, 60_000);
