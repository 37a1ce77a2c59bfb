import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, bearer, type AccessHarness } from "./support.ts";
import { API_KEY_HASH_LABEL, generateApiKey, hashSecret, parseApiKey } from "../../src/access/api-key-format.ts";
import { AuthFailure } from "../../src/access/api-keys.ts";
import { toBase64url } from "../../src/crypto/bytes.ts";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

describe("API key format", () => {
  test("ckms_<keyId>_<secret>, parsed back exactly, hash bound to keyId", () => {
    const { keyId, apiKey, secretHash } = generateApiKey();
    expect(apiKey).toMatch(/^ckms_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/);
    const parsed = parseApiKey(apiKey)!;
    expect(parsed.keyId).toBe(keyId);
    expect(hashSecret(keyId, parsed.secret)).toBe(secretHash);
    // The same secret under another keyId hashes differently.
    expect(hashSecret("bbbbbbbbbbbbbbbb", parsed.secret)).not.toBe(secretHash);
    expect(API_KEY_HASH_LABEL).toBe("chronokms/v1/api-key-secret");
  });

  test("the stored hash is HMAC-SHA256(label, keyId || 0x00 || secret): keys stored by earlier versions still verify", () => {
    const secret = Uint8Array.from({ length: 32 }, (_, i) => i);
    // Computed independently (pure-JS HMAC, as the service did before it went native).
    const msg = new Uint8Array([...new TextEncoder().encode("aaaaaaaaaaaaaaaa"), 0, ...secret]);
    const expected = toBase64url(hmac(sha256, new TextEncoder().encode(API_KEY_HASH_LABEL), msg));
    expect(hashSecret("aaaaaaaaaaaaaaaa", secret)).toBe(expected);
  });

  test("malformed keys are refused, including non-canonical base64url and wrong lengths", () => {
    const { apiKey } = generateApiKey();
    for (const bad of [
      "",
      apiKey.slice(0, -1),
      `${apiKey}A`,
      apiKey.replace("ckms_", "ckmx_"),
      apiKey.toUpperCase(),
      `${apiKey.slice(0, -1)}B`,
      ` ${apiKey}`,
    ]) {
      expect(parseApiKey(bad)).toBeNull();
    }
    // The last base64url char of a 32-byte value carries 4 unused bits: a non-zero variant is refused.
    const secret = new Uint8Array(32);
    const canonical = `ckms_aaaaaaaaaaaaaaaa_${toBase64url(secret)}`;
    expect(parseApiKey(canonical)).not.toBeNull();
    expect(parseApiKey(`${canonical.slice(0, -1)}B`)).toBeNull();
  });
});

describeEachDb("API key verification", (h) => {
  let x: AccessHarness;
  beforeAll(async () => {
    x = await accessHarness(h.db);
  });
  afterAll(async () => x?.close());

  test("the stored row holds only the keyed hash, never the secret", async () => {
    const k = await x.makeKey(["reader"]);
    const row = await h.db.prisma.apiKey.findUnique({ where: { keyId: k.keyId } });
    const secret = k.apiKey.split("_").slice(2).join("_");
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row!.secretHash).toBe(hashSecret(k.keyId, parseApiKey(k.apiKey)!.secret));
  });

  test("right key verifies; wrong secret with the same keyId, unknown keyId and malformed keys fail with the reason kept internal", async () => {
    const k = await x.makeKey(["reader", "writer"]);
    const p = await x.access.apiKeys.verify(k.apiKey);
    expect(p.requesterId).toBe(k.requesterId);
    expect([...p.roles].sort()).toEqual(["reader", "writer"]);

    const other = generateApiKey(k.keyId).apiKey; // same keyId, different secret
    const reason = async (key: string | undefined) => {
      try {
        await x.access.apiKeys.verify(key);
        return "accepted";
      } catch (e) {
        return e instanceof AuthFailure ? e.reason : String(e);
      }
    };
    expect(await reason(other)).toBe("wrong-secret");
    expect(await reason(generateApiKey().apiKey)).toBe("unknown-key");
    expect(await reason("ckms_nope")).toBe("malformed");
    expect(await reason(undefined)).toBe("missing");
    // A cached success for the right key never lets another secret through.
    await x.access.apiKeys.verify(k.apiKey);
    expect(await reason(other)).toBe("wrong-secret");
  });

  test("disabling the key, disabling the requester and expiry take effect (at once in this process)", async () => {
    const k = await x.makeKey(["reader"], { expiresAt: x.clock.now() + 60_000 });
    await x.access.apiKeys.verify(k.apiKey); // cached now
    x.clock.advance(61_000);
    await expect(x.access.apiKeys.verify(k.apiKey)).rejects.toMatchObject({ reason: "key-expired" });

    const k2 = await x.makeKey(["reader"]);
    await x.access.apiKeys.verify(k2.apiKey);
    await x.access.requesters.update(k2.requesterUuid, { enabled: false }, "test");
    await expect(x.access.apiKeys.verify(k2.apiKey)).rejects.toMatchObject({ reason: "requester-disabled" });

    const k3 = await x.makeKey(["reader"]);
    await x.access.apiKeys.verify(k3.apiKey);
    await x.access.apiKeys.revoke(k3.requesterUuid, k3.keyId, "test");
    await expect(x.access.apiKeys.verify(k3.apiKey)).rejects.toMatchObject({ reason: "key-disabled" });
  });

  test("a revocation through another process is honoured once the verification cache expires", async () => {
    const k = await x.makeKey(["reader"]);
    await x.access.apiKeys.verify(k.apiKey);
    await h.db.prisma.apiKey.update({ where: { keyId: k.keyId }, data: { enabled: false } }); // "another process"
    x.clock.advance(6_000);
    await expect(x.access.apiKeys.verify(k.apiKey)).rejects.toMatchObject({ reason: "key-disabled" });
  });

  test("lastUsedAt is coalesced: no write per request, one flush writes the latest time", async () => {
    const k = await x.makeKey(["reader"]);
    for (let i = 0; i < 5; i++) {
      x.clock.advance(10);
      await x.access.apiKeys.verify(k.apiKey);
    }
    expect((await h.db.prisma.apiKey.findUnique({ where: { keyId: k.keyId } }))!.lastUsedAt).toBeNull();
    await x.access.apiKeys.flushLastUsed();
    const row = await h.db.prisma.apiKey.findUnique({ where: { keyId: k.keyId } });
    expect(row!.lastUsedAt!.getTime()).toBe(x.clock.now());
  });

  test("a key shown once: the API returns it at creation and never again", async () => {
    const admin = await x.makeKey(["admin"]);
    const target = await x.makeKey(["reader"]);
    const res = await x.app.request(
      `/v1/requesters/${target.requesterUuid}/api-keys`,
      bearer(admin.apiKey, { method: "POST", body: JSON.stringify({ roles: ["reader"], name: "ci" }) }),
    );
    expect(res.status).toBe(201);
    const body = (await res.json()) as { keyId: string; apiKey: string };
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect((await x.access.apiKeys.verify(body.apiKey)).requesterId).toBe(target.requesterId);
    const get = await (await x.app.request(`/v1/requesters/${target.requesterUuid}`, bearer(admin.apiKey))).text();
    expect(get).toContain(body.keyId);
    expect(get).not.toContain(body.apiKey.split("_").slice(2).join("_"));
    expect(x.audit.events.some((e) => e.eventType === "API_KEY_CREATED" && e.target === `api-key:${body.keyId}`)).toBe(
      true,
    );
    expect(JSON.stringify(x.audit.events)).not.toContain(body.apiKey);
  });

  test("if the API_KEY_CREATED row cannot be written, no key exists and the caller gets 503", async () => {
    const admin = await x.makeKey(["admin"]);
    const target = await x.makeKey(["reader"]);
    await x.access.apiKeys.verify(admin.apiKey);
    const before = await h.db.prisma.apiKey.count();
    x.audit.failing = true;
    try {
      const res = await x.app.request(
        `/v1/requesters/${target.requesterUuid}/api-keys`,
        bearer(admin.apiKey, { method: "POST", body: JSON.stringify({ roles: ["admin"] }) }),
      );
      expect(res.status).toBe(503);
      expect(await res.text()).not.toContain("ckms_");
    } finally {
      x.audit.failing = false;
    }
    expect(await h.db.prisma.apiKey.count()).toBe(before);
  });

  test("bad api-key bodies and ids are 4xx, never 500", async () => {
    const admin = await x.makeKey(["admin"]);
    const target = await x.makeKey(["reader"]);
    const post = (path: string, body: unknown) =>
      x.app.request(path, bearer(admin.apiKey, { method: "POST", body: JSON.stringify(body) }));
    expect((await post(`/v1/requesters/${target.requesterUuid}/api-keys`, { roles: [] })).status).toBe(400);
    expect((await post(`/v1/requesters/${target.requesterUuid}/api-keys`, { roles: ["root"] })).status).toBe(400);
    expect(
      (
        await post(`/v1/requesters/${target.requesterUuid}/api-keys`, {
          roles: ["reader"],
          expiresAt: "2020-01-01T00:00:00Z",
        })
      ).status,
    ).toBe(400);
    expect(
      (await post(`/v1/requesters/${target.requesterUuid}/api-keys`, { roles: ["reader"], extra: 1 })).status,
    ).toBe(400);
    expect((await post(`/v1/requesters/not-a-uuid/api-keys`, { roles: ["reader"] })).status).toBe(400);
    expect(
      (await post(`/v1/requesters/00000000-0000-7000-8000-000000000000/api-keys`, { roles: ["reader"] })).status,
    ).toBe(404);
    const del = await x.app.request(
      `/v1/requesters/${target.requesterUuid}/api-keys/NOT_A_KEY`,
      bearer(admin.apiKey, { method: "DELETE" }),
    );
    expect(del.status).toBe(400);
    const other = await x.makeKey(["reader"]);
    // A key of another requester cannot be revoked through this one's path.
    const cross = await x.app.request(
      `/v1/requesters/${target.requesterUuid}/api-keys/${other.keyId}`,
      bearer(admin.apiKey, { method: "DELETE" }),
    );
    expect(cross.status).toBe(404);
  });
});
