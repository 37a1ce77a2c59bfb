/**
 * `GET /metrics`: admin-only on the API port, Prometheus text that a real parser accepts
 * (`promtool check metrics`, Debian's prometheus package), counters that move as requests are
 * driven, and no API key, token, user id or requester in it. Plus the unauthenticated listener on
 * METRICS_PORT.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, bearer, type AccessHarness } from "../access/support.ts";
import { startServer } from "../../src/server.ts";
import { createLogger } from "../../src/log.ts";
import { testConfig } from "../support/app.ts";

const promtool = Bun.which("promtool");
if (!promtool && process.env.CI) throw new Error("promtool (Debian package prometheus) is required in CI");

/** `promtool check metrics` reads the exposition on stdin; exit 0 = parsed and lint-clean. */
async function promtoolCheck(text: string): Promise<{ code: number; out: string }> {
  const p = Bun.spawn([promtool!, "check", "metrics"], { stdin: new Blob([text]), stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code, out: out + err };
}

/** Value of one sample, by metric name and exact label set (as rendered). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels);
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = new Map(
      [...(m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]),
    );
    if (want.every(([k, v]) => got.get(k) === v) && got.size === want.length) return Number(m[3]);
  }
  return 0;
}

describeEachDb("metrics", (h) => {
  let x: AccessHarness;
  let admin: string;
  let reader: string;
  let writer: string;
  const userId = "metrics-user-7f3a";
  const secretToken = "ya29.metrics-secret-access-token-0123456789";
  const secretRefresh = "1//metrics-secret-refresh-token-9876543210";

  beforeAll(async () => {
    x = await accessHarness(h.db);
    admin = (await x.makeKey(["admin"], { requesterId: "metrics-admin-requester" })).apiKey;
    reader = (await x.makeKey(["reader"], { requesterId: "metrics-reader-requester" })).apiKey;
    writer = (await x.makeKey(["writer"], { requesterId: "metrics-writer-requester" })).apiKey;
  });
  afterAll(() => x.close());

  const scrape = async (key = admin) => {
    const res = await x.app.request("/metrics", bearer(key));
    return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
  };

  test("admin only on the API port", async () => {
    expect((await x.app.request("/metrics")).status).toBe(401);
    expect((await scrape(reader)).status).toBe(403);
    expect((await scrape(writer)).status).toBe(403);
    const ok = await scrape();
    expect(ok.status).toBe(200);
    expect(ok.type).toContain("text/plain");
    expect(ok.type).toContain("version=0.0.4");
  });

  test("counters move as requests are driven; the output parses and carries no secret or user id", async () => {
    const before = await scrape();
    const tokenRoute = { route: "/v1/tokens/:integration/:userId" };

    const put = await x.app.request(
      `/v1/tokens/gmail/${userId}`,
      bearer(writer, {
        method: "PUT",
        body: JSON.stringify({ accessToken: secretToken, refreshToken: secretRefresh }),
      }),
    );
    expect(put.status).toBeLessThan(300);
    for (let i = 0; i < 3; i++)
      expect((await x.app.request(`/v1/tokens/gmail/${userId}`, bearer(reader))).status).toBe(403); // no policy admits the reader
    expect((await x.app.request(`/v1/tokens/gmail/${userId}`)).status).toBe(401);
    expect((await x.app.request("/no/such/path")).status).toBe(404);

    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) =>
      sample(after.text, name, labels) - sample(before.text, name, labels);
    expect(delta("chronokms_http_requests_total", { ...tokenRoute, method: "GET", status: "403" })).toBe(3);
    expect(delta("chronokms_http_requests_total", { ...tokenRoute, method: "GET", status: "401" })).toBe(1);
    expect(delta("chronokms_http_requests_total", { ...tokenRoute, method: "PUT", status: String(put.status) })).toBe(
      1,
    );
    expect(delta("chronokms_http_requests_total", { route: "unmatched", method: "GET", status: "404" })).toBe(1);
    expect(
      delta("chronokms_http_request_duration_seconds_count", { ...tokenRoute, method: "GET", status: "403" }),
    ).toBe(3);
    expect(delta("chronokms_access_decisions_total", { outcome: "denied", reason: "NO_POLICY" })).toBe(3);
    expect(delta("chronokms_audit_batch_events_count", {})).toBeGreaterThan(0);
    expect(delta("chronokms_audit_commit_duration_seconds_count", { result: "ok" })).toBeGreaterThan(0);
    expect(sample(after.text, "chronokms_key_versions", { status: "active" })).toBe(1);
    expect(sample(after.text, "chronokms_records_pending_reencryption")).toBe(0);
    expect(after.text).toMatch(/^chronokms_audit_checkpoint_age_seconds \d/m);
    expect(after.text).toMatch(/^chronokms_db_pool_connections\{state="total"\} \d/m);

    // No raw path, key, token, user or requester: labels are templates, codes and outcomes.
    for (const secret of [
      admin,
      reader,
      writer,
      admin.split("_")[1]!,
      secretToken,
      secretRefresh,
      userId,
      "metrics-reader-requester",
      "metrics-admin-requester",
      "/no/such/path",
    ]) {
      expect({ secret, found: after.text.includes(secret) }).toEqual({ secret, found: false });
    }

    if (promtool) {
      const check = await promtoolCheck(after.text);
      expect(check).toEqual({ code: 0, out: "" });
    }
  });
});

test("METRICS_PORT: a separate listener serves /metrics without authentication; the API port still wants an admin", async () => {
  const config = testConfig({ PORT: "0", METRICS_PORT: "0", METRICS_HOST: "127.0.0.1" });
  const running = await startServer(config, createLogger("silent"));
  try {
    const open = await fetch(running.metricsUrl!);
    expect(open.status).toBe(200);
    const text = await open.text();
    expect(text).toContain("# TYPE chronokms_http_requests_total counter");
    expect((await fetch(`${running.metricsUrl!.replace(/\/metrics$/, "")}/v1/keys`)).status).toBe(404); // nothing else there
    expect((await fetch(`${running.url}/metrics`)).status).toBe(401);
    if (promtool) expect((await promtoolCheck(text)).code).toBe(0);
  } finally {
    await running.stop();
  }
}, 60_000);

test("refreshes and decisions are counted from committed audit batches only, with bounded labels", async () => {
  const { createMetrics } = await import("../../src/metrics/index.ts");
  const m = createMetrics();
  const ev = (eventType: string, details: Record<string, unknown>) =>
    ({ eventType, actor: "a", success: true, details }) as never;
  m.observeAuditBatch({
    ok: true,
    seconds: 0.003,
    events: [
      ev("TOKEN_REFRESHED", {}),
      ev("TOKEN_REFRESH_FAILED", { reason: "invalid_grant", permanent: true }),
      ev("TOKEN_REFRESH_FAILED", { reason: "http_503", permanent: false }),
      ev("TOKEN_REFRESH_FAILED", { reason: "provider_said_user-7f3a", permanent: false }),
      ev("ACCESS_DENIED", { reasonCode: "OUTSIDE_TIME_WINDOW" }),
      ev("ACCESS_DENIED", { reasonCode: "not a code; user-7f3a" }),
      ev("ACCESS_GRANTED", { reasonCode: "GRANTED" }),
    ],
  });
  m.observeAuditBatch({ ok: false, seconds: 2, events: [ev("ACCESS_GRANTED", {})] }); // rolled back: not a decision
  const text = await m.render();
  expect(sample(text, "chronokms_token_refreshes_total", { outcome: "refreshed", reason: "ok" })).toBe(1);
  expect(sample(text, "chronokms_token_refreshes_total", { outcome: "needs-reauth", reason: "invalid_grant" })).toBe(1);
  expect(sample(text, "chronokms_token_refreshes_total", { outcome: "failed", reason: "http_503" })).toBe(1);
  expect(sample(text, "chronokms_token_refreshes_total", { outcome: "failed", reason: "other" })).toBe(1);
  expect(sample(text, "chronokms_access_decisions_total", { outcome: "denied", reason: "OUTSIDE_TIME_WINDOW" })).toBe(
    1,
  );
  expect(sample(text, "chronokms_access_decisions_total", { outcome: "denied", reason: "OTHER" })).toBe(1);
  expect(sample(text, "chronokms_access_decisions_total", { outcome: "granted", reason: "GRANTED" })).toBe(1);
  expect(sample(text, "chronokms_audit_commit_duration_seconds_count", { result: "failed" })).toBe(1);
  expect(sample(text, "chronokms_audit_batch_events_count")).toBe(1);
  expect(text).not.toContain("user-7f3a");
  if (promtool) expect((await promtoolCheck(text)).code).toBe(0);
});
