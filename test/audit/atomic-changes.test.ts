/**
 * Every state change commits in ONE transaction with its audit row (SPEC §6 v2): for every
 * mutating operation of the OpenAPI document, with the audit table locked and with the audit
 * writer's connection killed at each step of its transaction (after BEGIN, after the change, after
 * the audit INSERT), the caller gets 503 and the database holds neither the change nor its row.
 * Table-driven over /openapi.json: a mutating route missing from CASES fails the suite.
 * PostgreSQL only: locking a table from a second connection, or killing one, needs a server.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import pg from "pg";
import { describePostgres } from "../support/databases.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import type { WriteStep } from "../../src/audit/writer.ts";
import { BOOTSTRAP_KEY, callApi, provision } from "../tokens/helpers.ts";
import { startFakeOAuth, type FakeOAuth } from "../support/fake-oauth.ts";

type Call = { key: string; path: string; body?: unknown };
type Ctx = { admin: string; writer: string; reader: string; proxy: string; app: TestApp; n: number };

const FAULTS = [
  "audit table locked",
  "killed after BEGIN",
  "killed after the change",
  "killed after the audit INSERT",
] as const;
const STEP: Record<(typeof FAULTS)[number], WriteStep | null> = {
  "audit table locked": null,
  "killed after BEGIN": "begin",
  "killed after the change": "changed",
  "killed after the audit INSERT": "inserted",
};

/**
 * Fixture calls: a connection killed by a previous case may still sit in the app's pool and fail
 * one query outside the audit writer (a clean 503); the fixture call is then made once more.
 */
async function created<T>(first: Response | (() => Promise<Response>), what: string): Promise<T> {
  let res = typeof first === "function" ? await first() : first;
  if (res.status === 503 && typeof first === "function") res = await first();
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

async function newRequester(c: Ctx): Promise<string> {
  return (
    await created<{ id: string }>(
      () => callApi(c.app, c.admin, "POST", "/v1/requesters", { requesterId: `fixture-${c.n}`, name: "fixture" }),
      "requester",
    )
  ).id;
}
async function newPolicy(c: Ctx): Promise<string> {
  return (
    await created<{ id: string }>(
      () =>
        callApi(c.app, c.admin, "POST", "/v1/policies", {
          name: `fixture-${c.n}`,
          type: "whitelist",
          enabled: false,
          config: { requesters: ["nobody"] },
        }),
      "policy",
    )
  ).id;
}
async function newToken(c: Ctx, userId: string): Promise<void> {
  await created(
    () => callApi(c.app, c.writer, "PUT", `/v1/tokens/gmail/${userId}`, { accessToken: `ya29.fixture-${c.n}` }),
    "token",
  );
}

/** How to make each mutating operation change something real (fixtures made before the fault is armed). */
const CASES: Record<string, (c: Ctx) => Promise<Call>> = {
  "POST /v1/keys/rotate": async (c) => ({ key: c.admin, path: "/v1/keys/rotate" }),
  "PUT /v1/keys/schedule": async (c) => ({
    key: c.admin,
    path: "/v1/keys/schedule",
    body: { rotateEverySeconds: 86_400 + c.n, enabled: false },
  }),
  "POST /v1/requesters": async (c) => ({
    key: c.admin,
    path: "/v1/requesters",
    body: { requesterId: `new-${c.n}`, name: "new" },
  }),
  "PATCH /v1/requesters/{id}": async (c) => ({
    key: c.admin,
    path: `/v1/requesters/${await newRequester(c)}`,
    body: { name: "changed" },
  }),
  "DELETE /v1/requesters/{id}": async (c) => ({ key: c.admin, path: `/v1/requesters/${await newRequester(c)}` }),
  "POST /v1/requesters/{id}/api-keys": async (c) => ({
    key: c.admin,
    path: `/v1/requesters/${await newRequester(c)}/api-keys`,
    body: { roles: ["reader"] },
  }),
  "DELETE /v1/requesters/{id}/api-keys/{keyId}": async (c) => {
    const id = await newRequester(c);
    const k = await created<{ keyId: string }>(
      () => callApi(c.app, c.admin, "POST", `/v1/requesters/${id}/api-keys`, { roles: ["reader"] }),
      "api key",
    );
    return { key: c.admin, path: `/v1/requesters/${id}/api-keys/${k.keyId}` };
  },
  "POST /v1/policies": async (c) => ({
    key: c.admin,
    path: "/v1/policies",
    body: { name: `new-${c.n}`, type: "whitelist", enabled: false, config: { requesters: ["nobody"] } },
  }),
  "POST /v1/policies/simulate": async (c) => ({
    key: c.admin,
    path: "/v1/policies/simulate",
    body: {
      requesterId: "someone",
      resource: { type: "timeslice" },
      timeRange: { start: Date.now() - 60_000, end: Date.now() },
    },
  }),
  "PATCH /v1/policies/{id}": async (c) => ({
    key: c.admin,
    path: `/v1/policies/${await newPolicy(c)}`,
    body: { priority: 7 },
  }),
  "DELETE /v1/policies/{id}": async (c) => ({ key: c.admin, path: `/v1/policies/${await newPolicy(c)}` }),
  "POST /v1/access-requests": async (c) => ({
    key: c.reader,
    path: "/v1/access-requests",
    body: {
      resource: { type: "timeslice" },
      timeRange: { start: Date.now() - 7_200_000, end: Date.now() - 3_600_000 },
      purpose: "test",
    },
  }),
  "PUT /v1/tokens/{integration}/{userId}": async (c) => ({
    key: c.writer,
    path: `/v1/tokens/gmail/put-${c.n}`,
    body: { accessToken: "ya29.new-value", refreshToken: "1//refresh" },
  }),
  "DELETE /v1/tokens/{integration}/{userId}": async (c) => {
    await newToken(c, `del-${c.n}`);
    return { key: c.writer, path: `/v1/tokens/gmail/del-${c.n}` };
  },
  "POST /v1/webhooks": async (c) => ({
    key: c.admin,
    path: "/v1/webhooks",
    body: { url: `http://127.0.0.1:9/hook-${c.n}`, events: ["token.deleted"] },
  }),
  "DELETE /v1/webhooks/{id}": async (c) => {
    const w = await created<{ id: string }>(
      () =>
        callApi(c.app, c.admin, "POST", "/v1/webhooks", {
          url: `http://127.0.0.1:9/old-${c.n}`,
          events: ["key.rotated"],
        }),
      "webhook",
    );
    return { key: c.admin, path: `/v1/webhooks/${w.id}` };
  },
  // The proxy changes nothing here but the audit log: its decision row is written before anything is sent.
  ...Object.fromEntries(
    (["POST", "PUT", "PATCH", "DELETE"] as const).map((m) => [
      `${m} /v1/proxy/{integration}/{userId}/{path}`,
      async (c: Ctx) => {
        await created(
          () => callApi(c.app, c.writer, "PUT", `/v1/tokens/github/px-${c.n}`, { accessToken: "fixture-bearer" }),
          "token",
        );
        return {
          key: c.proxy,
          path: `/v1/proxy/github/px-${c.n}/repos/x`,
          ...(m === "DELETE" ? {} : { body: { a: 1 } }),
        };
      },
    ]),
  ),
  "DELETE /v1/users/{userId}/tokens": async (c) => {
    await newToken(c, `gone-${c.n}`);
    return { key: c.writer, path: `/v1/users/gone-${c.n}/tokens` };
  },
};

/** Everything a change could touch (usage timestamps aside), and the audit rows other than checkpoints. */
const SNAPSHOT = `SELECT
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg(to_jsonb(t)::text, ',' ORDER BY t.id)), '') FROM requesters t) AS requesters,
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg((to_jsonb(t) - 'lastUsedAt')::text, ',' ORDER BY t.id)), '') FROM api_keys t) AS api_keys,
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg(to_jsonb(t)::text, ',' ORDER BY t.id)), '') FROM policies t) AS policies,
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg((to_jsonb(t) - 'lastUsed')::text, ',' ORDER BY t.id)), '') FROM oauth_tokens t) AS oauth_tokens,
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg(to_jsonb(t)::text, ',' ORDER BY t.id)), '') FROM master_keys t) AS master_keys,
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg(to_jsonb(t)::text, ',' ORDER BY t.id)), '') FROM key_rotation_schedules t) AS schedule,
  (SELECT count(*)::text FROM access_requests) AS access_requests,
  (SELECT count(*)::text || ':' || coalesce(md5(string_agg(to_jsonb(t)::text, ',' ORDER BY t.id)), '') FROM webhooks t) AS webhooks,
  (SELECT count(*)::text FROM webhook_deliveries) AS webhook_deliveries,
  (SELECT count(*)::text FROM audit_logs WHERE "eventType" <> 'AUDIT_CHECKPOINT') AS audit_rows`;

describePostgres("every state change is atomic with its audit row", (h) => {
  let app: TestApp;
  let admin: pg.Client;
  let ctx: Ctx;
  let armed: WriteStep | null = null;
  let fake: FakeOAuth;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: h.db.url });
    admin.on("error", () => {});
    await admin.connect();
    // The provider API the proxy cases call: accepts the fixture bearer.
    fake = startFakeOAuth();
    fake.accepted.add("fixture-bearer");
    app = await startTestApp(h.db, {
      env: {
        BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY,
        AUDIT_WRITE_TIMEOUT_MS: "300",
        AUDIT_CHECKPOINT_SECONDS: "3600",
        GITHUB_API_BASE: `${fake.origin}/api`,
        WEBHOOK_POLL_MS: "0",
      },
      auditOnStep: async (step, conn) => {
        if (armed !== step) return;
        armed = null;
        await admin.query("SELECT pg_terminate_backend($1)", [await conn.backendPid()]);
      },
    });
    const keys = await provision(app, BOOTSTRAP_KEY);
    const p = await created<{ id: string }>(
      () => callApi(app, BOOTSTRAP_KEY, "POST", "/v1/requesters", { requesterId: "fixture-proxy", name: "proxy" }),
      "proxy requester",
    );
    const proxy = (
      await created<{ apiKey: string }>(
        () => callApi(app, BOOTSTRAP_KEY, "POST", `/v1/requesters/${p.id}/api-keys`, { roles: ["proxy"] }),
        "proxy key",
      )
    ).apiKey;
    await created(
      () =>
        callApi(app, BOOTSTRAP_KEY, "POST", "/v1/policies", {
          name: "fixture-proxy",
          type: "whitelist",
          config: { requesters: ["fixture-proxy"] },
        }),
      "proxy whitelist",
    );
    ctx = { admin: BOOTSTRAP_KEY, writer: keys.writer, reader: keys.reader, proxy, app, n: 0 };
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await fake?.stop();
    await admin?.end().catch(() => {});
  });

  const snapshot = async () => (await admin.query(SNAPSHOT)).rows[0] as Record<string, string>;

  test("every mutating operation of the OpenAPI document is in the table (a new route must show the guarantee)", async () => {
    const doc = (await (await app.app.request("/openapi.json")).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const mutating = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((m) => ["post", "put", "patch", "delete"].includes(m))
        .map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(mutating.filter((op) => !(op in CASES))).toEqual([]);
    expect(Object.keys(CASES).filter((op) => !mutating.includes(op))).toEqual([]);
  });

  for (const op of Object.keys(CASES)) {
    test(`${op}: 503 and neither the change nor its row, under each fault; then it works`, async () => {
      const method = op.split(" ")[0]!;
      for (const fault of FAULTS) {
        ctx.n += 1;
        const call = await CASES[op]!(ctx);
        const before = await snapshot();
        let res: Response;
        if (STEP[fault] === null) {
          await admin.query("BEGIN");
          await admin.query(`LOCK TABLE "audit_logs" IN ACCESS EXCLUSIVE MODE`);
          try {
            res = await callApi(app, call.key, method, call.path, call.body);
          } finally {
            await admin.query("ROLLBACK");
          }
        } else {
          armed = STEP[fault];
          res = await callApi(app, call.key, method, call.path, call.body);
          expect({ fault, fired: armed === null }).toEqual({ fault, fired: true });
          armed = null;
        }
        const body = (await res.json()) as { error?: { code: string } };
        expect({ fault, status: res.status, code: body.error?.code }).toEqual({
          fault,
          status: 503,
          code: "SERVICE_UNAVAILABLE",
        });
        expect({ fault, after: await snapshot() }).toEqual({ fault, after: before });
      }
      // Unfaulted, the same call changes the database and writes its row: the cases above were real.
      ctx.n += 1;
      const call = await CASES[op]!(ctx);
      const before = await snapshot();
      let ok = await callApi(app, call.key, method, call.path, call.body);
      // A connection killed above may still sit in the app's pool and fail one query outside the
      // audit writer (e.g. the token PUT's version read): that request is a clean 503; the next works.
      if (ok.status === 503) ok = await callApi(app, call.key, method, call.path, call.body);
      expect(ok.status).toBeLessThan(300);
      const after = await snapshot();
      expect(Number(after.audit_rows)).toBeGreaterThan(Number(before.audit_rows));
    }, 60_000);
  }
});
