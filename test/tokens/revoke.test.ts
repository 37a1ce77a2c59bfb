/**
 * Revocation on delete against the fake provider's RFC 7009 endpoint, on both databases: the
 * refresh token (else the access token) is revoked before the record goes; a provider failure
 * still deletes unless ?revoke=required; providers without an endpoint just delete; clear-for-user
 * revokes each record; the outcome is in the TOKEN_DELETED row and no token value is.
 */
import { beforeEach, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import type { FakeOAuth } from "../support/fake-oauth.ts";
import { fakeProviderApp } from "../support/provider-app.ts";
import { auditRows, toJson, type TokenTestApp } from "./helpers.ts";

describeEachDb("revocation on delete", (h) => {
  let a: TokenTestApp;
  let fake: FakeOAuth;
  fakeProviderApp(
    h,
    {
      env: (f) => ({
        GOOGLE_REVOKE_URL: `${f.origin}/revoke`,
        REVOKE_TIMEOUT_MS: "300",
      }),
    },
    (app, f) => {
      a = app;
      fake = f;
    },
  );
  beforeEach(() => {
    fake.revocations.length = 0;
    fake.revokeBehaviour = "ok";
  });

  const put = (integration: string, userId: string, body: object) =>
    a.call(a.writer, "PUT", `/v1/tokens/${integration}/${userId}`, body);
  const exists = async (integration: string, userId: string) =>
    (await h.db.prisma.oAuthToken.count({ where: { integration, userId } })) === 1;
  const lastDeleted = async (target: string) =>
    (await auditRows(h.db, "TOKEN_DELETED")).filter((r) => r.target === target).at(-1)!;

  test("the refresh token is revoked (with client credentials), then the record is deleted; outcome audited, no token in the row", async () => {
    expect((await put("gmail", "rv1", { accessToken: "at-rv1", refreshToken: "rt-rv1" })).status).toBe(201);
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/gmail/rv1")).status).toBe(204);
    expect(fake.revocations).toEqual([{ token: "rt-rv1", tokenTypeHint: "refresh_token", clientId: fake.clientId }]);
    expect(await exists("gmail", "rv1")).toBe(false);
    const row = await lastDeleted("token:gmail:rv1");
    expect(row.success).toBe(true);
    expect(row.details).toMatchObject({
      count: 1,
      revocation: { outcome: "revoked", provider: "GOOGLE", tokenTypeHint: "refresh_token" },
    });
    expect(toJson(await h.db.prisma.auditLog.findMany())).not.toContain("rt-rv1");
  });

  test("without a refresh token the access token is revoked", async () => {
    await put("gmail", "rv2", { accessToken: "at-rv2" });
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/gmail/rv2")).status).toBe(204);
    expect(fake.revocations).toEqual([{ token: "at-rv2", tokenTypeHint: "access_token", clientId: fake.clientId }]);
  });

  test("a provider failure (5xx or timeout) does not keep the record by default; the failure is audited", async () => {
    await put("gmail", "rv3", { accessToken: "at-rv3", refreshToken: "rt-rv3" });
    fake.revokeBehaviour = "error500";
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/gmail/rv3")).status).toBe(204);
    expect(await exists("gmail", "rv3")).toBe(false);
    expect((await lastDeleted("token:gmail:rv3")).details).toMatchObject({
      count: 1,
      revocation: { outcome: "failed", reason: "http_503" },
    });

    await put("gmail", "rv4", { accessToken: "at-rv4", refreshToken: "rt-rv4" });
    fake.revokeBehaviour = "hang";
    const started = Date.now();
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/gmail/rv4")).status).toBe(204);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await lastDeleted("token:gmail:rv4")).details).toMatchObject({
      revocation: { outcome: "failed", reason: "timeout" },
    });
  });

  test("?revoke=required keeps the record (502) when the provider did not confirm, and deletes once it does", async () => {
    await put("gmail", "rv5", { accessToken: "at-rv5", refreshToken: "rt-rv5" });
    fake.revokeBehaviour = "error500";
    const res = await a.call(a.writer, "DELETE", "/v1/tokens/gmail/rv5?revoke=required");
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("UPSTREAM_FAILED");
    expect(await exists("gmail", "rv5")).toBe(true);
    const kept = await lastDeleted("token:gmail:rv5");
    expect({ success: kept.success, details: kept.details }).toMatchObject({
      success: false,
      details: { count: 0, kept: true, revocation: { outcome: "failed" } },
    });
    fake.revokeBehaviour = "ok";
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/gmail/rv5?revoke=required")).status).toBe(204);
    expect(await exists("gmail", "rv5")).toBe(false);
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/gmail/rv5?revoke=sometimes")).status).toBe(400);
  });

  test("a provider without a revocation endpoint (GitHub by default): deleted, outcome unsupported", async () => {
    await put("github", "rv6", { accessToken: "at-rv6", refreshToken: "rt-rv6" });
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/github/rv6?revoke=required")).status).toBe(204);
    expect(fake.revocations).toEqual([]);
    expect((await lastDeleted("token:github:rv6")).details).toMatchObject({
      revocation: { outcome: "unsupported", provider: "GITHUB" },
    });
  });

  test("clear-for-user revokes every record first; required + a failure keeps them all", async () => {
    await put("gmail", "leaving", { accessToken: "at-l1", refreshToken: "rt-l1" });
    await put("google", "leaving", { accessToken: "at-l2" });
    await put("github", "leaving", { accessToken: "at-l3" });
    fake.revokeBehaviour = "error500";
    expect((await a.call(a.writer, "DELETE", "/v1/users/leaving/tokens?revoke=required")).status).toBe(502);
    expect(await h.db.prisma.oAuthToken.count({ where: { userId: "leaving" } })).toBe(3);
    fake.revokeBehaviour = "ok";
    fake.revocations.length = 0;
    const res = await a.call(a.writer, "DELETE", "/v1/users/leaving/tokens");
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      deleted: number;
      revocations: Array<{ integration: string; outcome: string }>;
    };
    expect(body.deleted).toBe(3);
    expect(body.revocations.map((r) => [r.integration, r.outcome])).toEqual([
      ["github", "unsupported"],
      ["gmail", "revoked"],
      ["google", "revoked"],
    ]);
    expect(fake.revocations.map((r) => r.token).sort()).toEqual(["at-l2", "rt-l1"]);
    expect((await lastDeleted("user:leaving")).details).toMatchObject({ count: 3 });
  });
});
