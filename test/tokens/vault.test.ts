/**
 * The token API over HTTP on both databases: round trip with ciphertext-only columns, a
 * ciphertext moved between users, validation, status, list, delete, and the access decision.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { auditRows, ManualClock, tokenTestApp, type TokenTestApp } from "./helpers.ts";

const T0 = Date.UTC(2026, 2, 9, 10, 0, 0); // a Monday, 10:00 UTC
const HOUR = 3_600_000;

describeEachDb("tokens over HTTP", (h) => {
  let a: TokenTestApp;
  const clock = new ManualClock(T0);
  beforeAll(async () => {
    a = await tokenTestApp(h.db, {
      clock,
      env: { GOOGLE_CLIENT_ID: "id", GOOGLE_CLIENT_SECRET: "secret", GOOGLE_TOKEN_URL: "http://127.0.0.1:1/token" },
    });
  }, 60_000);
  afterAll(() => a?.close());

  const put = (integration: string, userId: string, body: unknown, key = a.writer) =>
    a.call(key, "PUT", `/v1/tokens/${integration}/${userId}`, body, { "User-Agent": "tests/1.0" });
  const get = (integration: string, userId: string, query = "", key = a.reader) =>
    a.call(key, "GET", `/v1/tokens/${integration}/${userId}${query}`);

  test("round trip: store then read returns the token; the row holds only ciphertext", async () => {
    const accessToken = `ya29.access-${crypto.randomUUID()}`;
    const refreshToken = `1//refresh-${crypto.randomUUID()}`;
    const expiresAt = new Date(T0 + 2 * HOUR).toISOString();
    const stored = await put("gmail", "alice", {
      accessToken,
      refreshToken,
      expiresAt,
      scope: "mail.read",
      tokenType: "Bearer",
    });
    expect(stored.status).toBe(201);
    const meta = (await stored.json()) as { created: boolean; token: Record<string, unknown> };
    expect(meta.created).toBe(true);
    expect(JSON.stringify(meta)).not.toContain(accessToken);
    expect(meta.token).toMatchObject({
      integration: "gmail",
      userId: "alice",
      hasRefreshToken: true,
      status: "valid",
      userAgent: "tests/1.0",
    });

    const res = await get("gmail", "alice");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      integration: "gmail",
      userId: "alice",
      accessToken,
      expiresAt,
      scope: "mail.read",
      tokenType: "Bearer",
      refreshed: false,
      hasRefreshToken: true,
    });
    expect(body).not.toHaveProperty("refreshToken");
    expect(body.lastUsed).toBe(new Date(T0).toISOString());

    // Raw rows: no plaintext anywhere, ciphertexts carry this row's contexts.
    const rows = await h.db.prisma.$queryRawUnsafe<Array<Record<string, unknown>>>(
      `SELECT * FROM oauth_tokens WHERE "userId" = 'alice'`,
    );
    expect(rows.length).toBe(1);
    const raw = JSON.stringify(rows[0]);
    expect(raw).not.toContain(accessToken);
    expect(raw).not.toContain(refreshToken);
    expect(raw).not.toContain(accessToken.slice(6, 20));
    const row = rows[0]!;
    expect(String(row.accessToken).split(".").length).toBe(5);
    const header = JSON.parse(Buffer.from(String(row.accessToken).split(".")[0]!, "base64url").toString());
    expect(header).toMatchObject({
      alg: "dir",
      enc: "A256GCM",
      ctx: '["chronokms/oauth-token/v2","gmail","alice","access",1]',
    });
    expect(Buffer.from(header.salt, "base64url").length).toBe(32);
    expect(JSON.parse(Buffer.from(String(row.refreshToken).split(".")[0]!, "base64url").toString()).ctx).toBe(
      '["chronokms/oauth-token/v2","gmail","alice","refresh",1]',
    );
    expect(header.kid).toBe(`tok:${row.keyVersion}`);
    // Nor in the audit trail or the access-request rows.
    const audit = JSON.stringify(await h.db.prisma.$queryRawUnsafe(`SELECT * FROM audit_logs`), (_k, v) =>
      typeof v === "bigint" ? String(v) : v,
    );
    expect(audit).not.toContain(accessToken);
    expect(audit).not.toContain(refreshToken);
    expect((await auditRows(h.db, "TOKEN_STORED")).some((r) => r.target === "token:gmail:alice")).toBe(true);
    const granted = await auditRows(h.db, "ACCESS_GRANTED");
    expect(granted.some((r) => r.target === "token:gmail:alice")).toBe(true);

    // A replace is a 200 and resets to the new values (refresh token dropped when omitted).
    const replaced = await put("gmail", "alice", { accessToken: "second-token" });
    expect(replaced.status).toBe(200);
    expect(await (await get("gmail", "alice")).json()).not.toHaveProperty("refreshToken");
  });

  test("lastUsed is written in one coalesced flush, not on the read path", async () => {
    await put("github", "lu", { accessToken: "gho_lastused" });
    clock.t = T0 + 1000;
    expect((await get("github", "lu")).status).toBe(200);
    const before = await h.db.prisma.oAuthToken.findFirstOrThrow({ where: { userId: "lu" } });
    expect(before.lastUsed).toBeNull();
    await a.t.runtime.tokens.lastUsed.flush();
    const after = await h.db.prisma.oAuthToken.findFirstOrThrow({ where: { userId: "lu" } });
    expect(after.lastUsed?.getTime()).toBe(T0 + 1000);
    expect(after.version).toBe(before.version); // bookkeeping does not bump the CAS version
    clock.t = T0;
  });

  test("lastUsed has a one-minute resolution: reads within a minute of the stored time queue no write", async () => {
    await put("github", "lu-res", { accessToken: "gho_resolution" });
    const stored = async () =>
      (await h.db.prisma.oAuthToken.findFirstOrThrow({ where: { userId: "lu-res" } })).lastUsed?.getTime() ?? null;
    const readAt = async (t: number) => {
      clock.t = t;
      const res = await get("github", "lu-res");
      expect(res.status).toBe(200);
      // The answer always names this read, whatever is stored.
      expect(((await res.json()) as { lastUsed: string }).lastUsed).toBe(new Date(t).toISOString());
      await a.t.runtime.tokens.lastUsed.flush();
      return stored();
    };
    expect(await readAt(T0 + 10_000)).toBe(T0 + 10_000); // never used: written
    expect(await readAt(T0 + 30_000)).toBe(T0 + 10_000); // 20 s later: not worth a row update
    expect(await readAt(T0 + 69_999)).toBe(T0 + 10_000);
    expect(await readAt(T0 + 70_000)).toBe(T0 + 70_000); // a minute after the stored time: written
    clock.t = T0;
  });

  test("user A's ciphertext copied into user B's row: generic 422, nothing of either token, audited DECRYPT_FAILED", async () => {
    const aToken = `A-secret-${crypto.randomUUID()}`;
    const bToken = `B-secret-${crypto.randomUUID()}`;
    expect((await put("outlook", "user-a", { accessToken: aToken, refreshToken: `${aToken}-r` })).status).toBe(201);
    expect((await put("outlook", "user-b", { accessToken: bToken, refreshToken: `${bToken}-r` })).status).toBe(201);
    await h.db.prisma.$executeRawUnsafe(
      `UPDATE oauth_tokens SET "accessToken" = (SELECT "accessToken" FROM oauth_tokens WHERE "userId" = 'user-a' AND integration = 'outlook') WHERE "userId" = 'user-b' AND integration = 'outlook'`,
    );
    const res = await get("outlook", "user-b");
    expect(res.status).toBe(422);
    const text = await res.text();
    expect(JSON.parse(text).error).toMatchObject({ code: "DECRYPTION_FAILED", message: "decryption failed" });
    for (const secret of [aToken, bToken, aToken.slice(9, 21), bToken.slice(9, 21)]) expect(text).not.toContain(secret);
    const failed = (await auditRows(h.db, "DECRYPT_FAILED")).filter((r) => r.target === "token:outlook:user-b");
    expect(failed.length).toBe(1);
    expect(failed[0]).toMatchObject({ actor: expect.stringContaining("svc-reader"), success: false });
    expect(failed[0]!.details).toMatchObject({ field: "access" });
    const all = JSON.stringify(failed[0]!.details);
    expect(all).not.toContain(aToken);
    expect(all).not.toContain("eyJ"); // no ciphertext (JWE headers start with eyJ)
    // The status route never decrypts, so it still answers — without any token.
    const status = await a.call(a.reader, "GET", "/v1/tokens/outlook/user-b/status");
    expect(status.status).toBe(200);
    expect(await status.text()).not.toContain(aToken);
  });

  test("bad input is a clear 400 and writes nothing", async () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ["/v1/tokens/gmail/bob", { accessToken: "x", extra: 1 }, /extra|unrecognized/i],
      ["/v1/tokens/gmail/bob", { accessToken: "x".repeat(8193) }, /at most 8192/],
      ["/v1/tokens/gmail/bob", { accessToken: "x", refreshToken: "r".repeat(9000) }, /refreshToken/],
      ["/v1/tokens/gmail/bob", { accessToken: "x", expiresAt: "tomorrow" }, /expiresAt/],
      ["/v1/tokens/gmail/bob", { accessToken: "x", expiresAt: 1.5 }, /expiresAt/],
      ["/v1/tokens/gmail/bob", { accessToken: "tab\tinside" }, /printable/],
      ["/v1/tokens/gmail/bob", { refreshToken: "r" }, /accessToken is required/],
      ["/v1/tokens/gmail/bob", [], /JSON object/],
      ["/v1/tokens/gm%20ail/bob", { accessToken: "x" }, /integration/],
      ["/v1/tokens/gmail/b%2Fob", { accessToken: "x" }, /userId/],
      [`/v1/tokens/gmail/${"u".repeat(129)}`, { accessToken: "x" }, /userId/],
    ];
    for (const [path, body, message] of cases) {
      const res = await a.call(a.writer, "PUT", path, body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(message);
    }
    expect((await a.call(a.writer, "PUT", "/v1/tokens/gmail/bob", "{not json")).status).toBe(400);
    expect(await h.db.prisma.oAuthToken.count({ where: { userId: "bob" } })).toBe(0);
    expect((await get("gmail", "bob", "?refresh=sometimes")).status).toBe(400);
    expect((await a.call(a.reader, "GET", "/v1/tokens?limit=0")).status).toBe(400);
    expect((await a.call(a.reader, "GET", "/v1/tokens?cursor=nope")).status).toBe(400);
    // epoch milliseconds are accepted for expiresAt
    expect((await put("gmail", "bob", { accessToken: "x", expiresAt: T0 + HOUR })).status).toBe(201);
  });

  test("roles: writer stores and deletes, reader reads and lists; each refuses the others", async () => {
    await put("gmail", "roles", { accessToken: "role-token" });
    expect((await put("gmail", "roles", { accessToken: "x" }, a.reader)).status).toBe(403);
    expect((await get("gmail", "roles", "", a.writer)).status).toBe(403);
    expect((await a.call(a.writer, "GET", "/v1/tokens/gmail/roles/status")).status).toBe(403);
    expect((await a.call(a.reader, "DELETE", "/v1/tokens/gmail/roles")).status).toBe(403);
    expect((await a.call(a.reader, "DELETE", "/v1/users/roles/tokens")).status).toBe(403);
    expect((await a.call(a.writer, "GET", "/v1/tokens")).status).toBe(403);
    expect((await a.call(a.admin, "GET", "/v1/tokens/gmail/roles")).status).toBe(403);
    expect((await a.call(null, "GET", "/v1/tokens/gmail/roles")).status).toBe(401);
  });

  test("a reader no whitelist admits is denied by the policy engine, and the denial is audited", async () => {
    await put("gmail", "denied-user", { accessToken: "never-shown" });
    const res = await get("gmail", "denied-user", "", a.stranger);
    expect(res.status).toBe(403);
    const text = await res.text();
    expect(text).not.toContain("never-shown");
    expect(JSON.parse(text).error.code).toBe("ACCESS_DENIED");
    const denials = await auditRows(h.db, "ACCESS_DENIED");
    expect(denials.some((r) => r.target === "token:gmail:denied-user")).toBe(true);
  });

  test("the row is fetched alongside the decision, but a denial still wins over 'not found' (403, never 404)", async () => {
    const res = await get("gmail", "no-such-user", "", a.stranger);
    expect(res.status).toBe(403);
    expect((await res.json()).error.code).toBe("ACCESS_DENIED");
    const allowed = await get("gmail", "no-such-user", "", a.reader);
    expect(allowed.status).toBe(404);
    const grants = await auditRows(h.db, "ACCESS_GRANTED");
    expect(grants.some((r) => r.target === "token:gmail:no-such-user")).toBe(true);
  });

  test("status: valid, expired (refreshable), needs-reauth (no refresh token); never the token", async () => {
    await put("gmail", "s-valid", { accessToken: "tok-valid", expiresAt: T0 + HOUR });
    await put("gmail", "s-expired", { accessToken: "tok-expired", refreshToken: "rt", expiresAt: T0 - HOUR });
    await put("gmail", "s-dead", { accessToken: "tok-dead", expiresAt: T0 - HOUR });
    await put("slack", "s-noprovider", { accessToken: "tok-np", refreshToken: "rt", expiresAt: T0 - HOUR });
    for (const [user, integration, status] of [
      ["s-valid", "gmail", "valid"],
      ["s-expired", "gmail", "expired"],
      ["s-dead", "gmail", "needs-reauth"],
      ["s-noprovider", "slack", "needs-reauth"],
    ] as const) {
      const res = await a.call(a.reader, "GET", `/v1/tokens/${integration}/${user}/status`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(JSON.parse(text).status).toBe(status);
      expect(text).not.toContain("tok-");
    }
    expect((await a.call(a.reader, "GET", "/v1/tokens/gmail/nobody/status")).status).toBe(404);
    // Expired with nothing to refresh it: a read says re-authenticate.
    const dead = await get("gmail", "s-dead");
    expect(dead.status).toBe(409);
    expect(((await dead.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: "REAUTH_REQUIRED",
      message: expect.stringContaining("re-authenticate"),
    });
    // refresh=never returns what is stored, expired or not.
    expect((await get("gmail", "s-dead", "?refresh=never")).status).toBe(200);
  });

  test("list: metadata only, filters, pagination", async () => {
    await put("gmail", "lister", { accessToken: "list-secret-1", refreshToken: "list-secret-r" });
    await put("github", "lister", { accessToken: "list-secret-2" });
    const res = await a.call(a.reader, "GET", "/v1/tokens?userId=lister");
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain("list-secret");
    expect(text).not.toContain("eyJ");
    const body = JSON.parse(text) as {
      items: Array<{ integration: string; hasRefreshToken: boolean }>;
      nextCursor: string | null;
    };
    expect(body.items.map((i) => i.integration).sort()).toEqual(["github", "gmail"]);
    const page1 = (await (await a.call(a.reader, "GET", "/v1/tokens?userId=lister&limit=1")).json()) as typeof body;
    expect(page1.items.length).toBe(1);
    const page2 = (await (
      await a.call(a.reader, "GET", `/v1/tokens?userId=lister&limit=1&cursor=${page1.nextCursor}`)
    ).json()) as typeof body;
    expect(page2.items.length).toBe(1);
    expect(page2.items[0]!.integration).not.toBe(page1.items[0]!.integration);
    const gh = (await (
      await a.call(a.reader, "GET", "/v1/tokens?integration=github&userId=lister")
    ).json()) as typeof body;
    expect(gh.items).toHaveLength(1);
  });

  test("delete and clear-all-for-user are audited", async () => {
    await put("gmail", "leaver", { accessToken: "d1" });
    await put("github", "leaver", { accessToken: "d2" });
    await put("outlook", "leaver", { accessToken: "d3" });
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/gmail/leaver")).status).toBe(204);
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/gmail/leaver")).status).toBe(404);
    expect((await get("gmail", "leaver")).status).toBe(404);
    const all = await a.call(a.writer, "DELETE", "/v1/users/leaver/tokens");
    expect(all.status).toBe(200);
    expect(await all.json()).toMatchObject({ deleted: 2, integrations: ["github", "outlook"] });
    expect(await h.db.prisma.oAuthToken.count({ where: { userId: "leaver" } })).toBe(0);
    const deleted = await auditRows(h.db, "TOKEN_DELETED");
    expect(deleted.some((r) => r.target === "token:gmail:leaver" && r.actor.startsWith("svc-writer"))).toBe(true);
    expect(deleted.some((r) => r.target === "user:leaver" && (r.details as { count: number }).count === 2)).toBe(true);
  });

  test("a policy denying reads outside business hours denies a token read at 03:00 (controlled clock); audited", async () => {
    await put("gmail", "night", { accessToken: "night-secret" });
    const created = await a.call(a.admin, "POST", "/v1/policies", {
      name: "business-hours",
      type: "time-based",
      scope: { resourceTypes: ["token"] },
      config: { timezone: "UTC", days: ["mon", "tue", "wed", "thu", "fri"], hours: { from: "09:00", to: "17:00" } },
    });
    expect(created.status).toBe(201);
    const policyId = ((await created.json()) as { id: string }).id;
    try {
      clock.t = Date.UTC(2026, 2, 10, 3, 0, 0); // Tuesday 03:00 UTC
      const night = await get("gmail", "night");
      expect(night.status).toBe(403);
      const text = await night.text();
      expect(text).not.toContain("night-secret");
      expect(JSON.parse(text).error).toMatchObject({ code: "ACCESS_DENIED", details: { policyId } });
      const denial = (await auditRows(h.db, "ACCESS_DENIED")).filter((r) => r.target === "token:gmail:night");
      expect(denial).toHaveLength(1);
      expect(denial[0]!.details).toMatchObject({ policyId });
      expect(await h.db.prisma.accessRequest.count({ where: { granted: false, policyId } })).toBe(1);
      clock.t = Date.UTC(2026, 2, 10, 10, 0, 0); // Tuesday 10:00 UTC: the same read is granted
      expect((await get("gmail", "night")).status).toBe(200);
    } finally {
      clock.t = T0;
      await a.call(a.admin, "DELETE", `/v1/policies/${policyId}`);
    }
  });
});
