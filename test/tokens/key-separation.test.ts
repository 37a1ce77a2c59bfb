/**
 * Key separation (SPEC v2 §4, §8), from the attacker's side, on both databases:
 * - every key and every seed-derived leaf any grant in the test releases (several ranges, two key
 *   versions) is tried on every token envelope in the database: none opens;
 * - a forged envelope (ECDH-ES to a published slice key, right ctx) and an older ciphertext of the
 *   same row written back in SQL are refused: 422 + DECRYPT_FAILED;
 * - ciphertext swapped between rows/fields (identifiers with ':', '"', unicode) → 422, never plaintext;
 * - reads never carry the refresh token; export needs `exporter`; list/status are decisions.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { encryptEnvelope, sliceIndex } from "../../src/crypto/index.ts";
import { DecryptionFailedError } from "../../src/errors.ts";
import type { Principal } from "../../src/access/principal.ts";
import { fieldContexts, legacyTokenContext } from "../../src/tokens/record.ts";
import { describeEachDb } from "../support/databases.ts";
import { auditRows, toJson, tokenTestApp, type TokenTestApp } from "./helpers.ts";
import { opens, releasedMaterial, type Grant } from "./released-material.ts";

describeEachDb("key separation: OAuth tokens in their own key domain", (h) => {
  let a: TokenTestApp;
  let writerPrincipal: Principal;
  let readerPrincipal: Principal;
  const ODD = [
    { integration: "a", userId: "b:c" },
    { integration: "a:b", userId: "c" },
    { integration: "generic", userId: 'quo"te' },
    { integration: "slack", userId: "zoë-日本" },
  ];
  beforeAll(async () => {
    a = await tokenTestApp(h.db, { env: { SLICE_SECONDS: "3600" } });
    // The attacker's best case: a deployment that releases the running slice (allowFuture), so
    // grants cover the very instants the tokens below are written.
    const allow = await a.call(a.admin, "POST", "/v1/policies", {
      name: "allow-current-slice",
      type: "time-based",
      config: { timezone: "UTC", allowFuture: true },
    });
    expect(allow.status).toBe(201);
    const principal = async (prefix: string, roles: Principal["roles"]) => {
      const r = await h.db.prisma.requester.findFirstOrThrow({ where: { requesterId: { startsWith: prefix } } });
      return {
        id: r.id,
        requesterId: r.requesterId,
        department: null,
        keyId: "test",
        roles,
        publicKeyJwk: null,
      } as Principal;
    };
    writerPrincipal = await principal("svc-writer", ["writer"]);
    readerPrincipal = await principal("svc-reader", ["reader"]);
  }, 60_000);
  afterAll(() => a?.close());

  const put = (i: string, u: string, body: unknown) =>
    a.call(a.writer, "PUT", `/v1/tokens/${encodeURIComponent(i)}/${encodeURIComponent(u)}`, body);
  const get = (i: string, u: string, key = a.reader) =>
    a.call(key, "GET", `/v1/tokens/${encodeURIComponent(i)}/${encodeURIComponent(u)}?refresh=never`);
  /** A read through the vault (identifiers the HTTP API refuses, like '"' and unicode, may still exist in rows). */
  const vaultRead = (i: string, u: string) =>
    a.t.runtime.tokens.read(readerPrincipal, { integration: i, userId: u }, { refresh: "never" });
  const storeAll = async (tag: string) => {
    for (const k of ODD)
      await a.t.runtime.tokens.store(
        writerPrincipal,
        k,
        { accessToken: `acc-${tag}-${k.userId}`, refreshToken: `ref-${tag}-${k.userId}` },
        { ipAddress: null, userAgent: null },
      );
    expect((await put("gmail", "alice", { accessToken: `ya29.${tag}`, refreshToken: `1//${tag}` })).status).toBeOneOf([
      200, 201,
    ]);
  };
  const grant = async (startMs: number, endMs: number, keyVersion?: number): Promise<Grant> => {
    const res = await a.call(a.reader, "POST", "/v1/access-requests", {
      resource: { type: "timeslice" },
      timeRange: { start: startMs, end: endMs },
      purpose: "key separation test",
      ...(keyVersion ? { keyVersion } : {}),
    });
    const body = await res.json();
    expect(res.status, JSON.stringify(body)).toBe(201);
    return body as Grant;
  };

  test("no key or leaf any grant releases (several ranges, both key versions) opens any token envelope", async () => {
    await storeAll("v1");
    const t1 = Date.now();
    const v1 = (await a.t.runtime.keys.active()).version;
    await a.t.runtime.keys.rotate();
    await storeAll("v2");
    const t2 = Date.now();
    const HOUR = 3600_000;
    const grants = [
      await grant(t1 - 3 * HOUR, t1, v1),
      await grant(t1 - 200 * HOUR, t1 - 100 * HOUR, v1), // seeds only (> 64 slices)
      await grant(t2 - HOUR, t2),
      await grant(t2 - 2 * HOUR, t2 - HOUR),
    ];
    expect(new Set(grants.map((g) => g.keyVersion))).toEqual(new Set([v1, v1 + 1]));
    const material = await releasedMaterial(grants);
    expect(material.jwks.length).toBeGreaterThan(8);
    // The test can tell: a released key does open time-slice data of its slice.
    const probeKey = grants[0]!.keys.at(-1)!;
    const probe = await encryptEnvelope("data", {
      publicKey: probeKey.privateJwk,
      kid: probeKey.kid,
      ts: t1,
      ctx: "sensor",
    });
    expect(await opens(probe, material)).toBeGreaterThan(0);

    const rows = await h.db.prisma.oAuthToken.findMany();
    expect(rows.length).toBe(ODD.length + 1);
    let tried = 0;
    let opened = 0;
    for (const r of rows) {
      for (const jwe of [r.accessToken, r.refreshToken]) {
        if (jwe === null) continue;
        tried++;
        opened += await opens(jwe, material);
      }
    }
    expect(tried).toBe(2 * rows.length);
    expect(opened).toBe(0);
  }, 120_000);

  test("a forged envelope (ECDH-ES to a published slice key, right ctx) → 422 + DECRYPT_FAILED", async () => {
    await put("gmail", "forge", { accessToken: "genuine" });
    const row = await h.db.prisma.oAuthToken.findFirstOrThrow({ where: { integration: "gmail", userId: "forge" } });
    const version = (await a.t.runtime.keys.active()).version;
    const slice = sliceIndex(Date.now(), 3600);
    const pub = (await (
      await a.call(null, "GET", `/v1/time-slices/${slice}/public-key?version=${version}`)
    ).json()) as { kid: string; publicJwk: JsonWebKey };
    for (const ctx of [fieldContexts(row, "access").ctx, legacyTokenContext("gmail", "forge", "access")]) {
      const forged = await encryptEnvelope("attacker-chosen", {
        publicKey: pub.publicJwk as never,
        kid: pub.kid,
        ts: Date.now(),
        ctx,
      });
      await h.db.prisma.$executeRaw`UPDATE oauth_tokens SET "accessToken" = ${forged} WHERE id = ${row.id}::uuid`;
      const before = (await auditRows(h.db, "DECRYPT_FAILED")).length;
      const res = await get("gmail", "forge");
      const text = await res.text();
      expect(res.status).toBe(422);
      expect(JSON.parse(text).error.code).toBe("DECRYPTION_FAILED");
      expect(text).not.toContain("attacker-chosen");
      const failed = await auditRows(h.db, "DECRYPT_FAILED");
      expect(failed.length).toBe(before + 1);
      expect(failed.at(-1)!.target).toBe("token:gmail:forge");
    }
  });

  test("an older ciphertext of the same row, written back in SQL → 422 + DECRYPT_FAILED", async () => {
    await put("github", "replay", { accessToken: "old-secret", refreshToken: "old-refresh" });
    const old = await h.db.prisma.oAuthToken.findFirstOrThrow({ where: { integration: "github", userId: "replay" } });
    await put("github", "replay", { accessToken: "new-secret" });
    expect((await (await get("github", "replay")).json()).accessToken).toBe("new-secret");
    await h.db.prisma
      .$executeRaw`UPDATE oauth_tokens SET "accessToken" = ${old.accessToken}, "refreshToken" = ${old.refreshToken} WHERE id = ${old.id}::uuid`;
    const before = (await auditRows(h.db, "DECRYPT_FAILED")).length;
    const res = await get("github", "replay");
    const text = await res.text();
    expect(res.status).toBe(422);
    expect(text).not.toContain("old-secret");
    expect((await auditRows(h.db, "DECRYPT_FAILED")).length).toBe(before + 1);
  });

  test("ciphertext swapped between rows and fields (':', '\"', unicode identifiers) → 422 DECRYPTION_FAILED, never plaintext", async () => {
    await storeAll("swap");
    const rows = await h.db.prisma.oAuthToken.findMany({
      where: { OR: ODD.map((k) => ({ integration: k.integration, userId: k.userId })) },
    });
    expect(rows.length).toBe(ODD.length);
    const values = rows.flatMap((r) => [
      { from: r, field: "accessToken" as const, jwe: r.accessToken },
      { from: r, field: "refreshToken" as const, jwe: r.refreshToken! },
    ]);
    let cases = 0;
    for (const target of rows) {
      for (const v of values) {
        if (v.from.id === target.id && v.field === "accessToken") continue; // its own genuine value
        cases++;
        await h.db.prisma.$executeRawUnsafe(
          `UPDATE oauth_tokens SET "accessToken" = $1 WHERE id = $2::uuid`,
          v.jwe,
          target.id,
        );
        const before = (await auditRows(h.db, "DECRYPT_FAILED")).length;
        const err = await vaultRead(target.integration, target.userId).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(DecryptionFailedError);
        expect((err as DecryptionFailedError).code).toBe("DECRYPTION_FAILED");
        expect((await auditRows(h.db, "DECRYPT_FAILED")).length).toBe(before + 1);
      }
      await h.db.prisma.$executeRawUnsafe(
        `UPDATE oauth_tokens SET "accessToken" = $1 WHERE id = $2::uuid`,
        target.accessToken,
        target.id,
      );
      expect((await vaultRead(target.integration, target.userId)).accessToken).toBe(`acc-swap-${target.userId}`);
    }
    expect(cases).toBe(rows.length * values.length - rows.length);
    // Over HTTP too, for the ':' pair whose v1 contexts collided: (a, b:c) ↔ (a:b, c) → 422.
    const x = rows.find((r) => r.integration === "a")!;
    const y = rows.find((r) => r.integration === "a:b")!;
    expect(legacyTokenContext(x.integration, x.userId, "access")).toBe(
      legacyTokenContext(y.integration, y.userId, "access"),
    );
    await h.db.prisma.$executeRawUnsafe(
      `UPDATE oauth_tokens SET "accessToken" = $1 WHERE id = $2::uuid`,
      x.accessToken,
      y.id,
    );
    const res = await get("a:b", "c");
    const text = await res.text();
    expect(res.status).toBe(422);
    expect(text).not.toContain("acc-swap");
  }, 60_000);

  test("the refresh token appears in no response but export; export needs role exporter and is audited", async () => {
    await put("gmail", "exp", { accessToken: "exp-access", refreshToken: "exp-refresh-SECRET" });
    const responses = [
      await get("gmail", "exp"),
      await a.call(a.reader, "GET", "/v1/tokens/gmail/exp/status"),
      await a.call(a.reader, "GET", "/v1/tokens?userId=exp"),
    ];
    for (const r of responses) {
      expect(r.status).toBe(200);
      expect(await r.text()).not.toContain("exp-refresh-SECRET");
    }
    expect((await (await get("gmail", "exp")).json()).hasRefreshToken).toBe(true);
    const asReader = await a.call(a.reader, "GET", "/v1/tokens/gmail/exp/export");
    expect(asReader.status).toBe(403);
    expect(await asReader.text()).not.toContain("exp-refresh-SECRET");
    const exported = await a.call(a.exporter, "GET", "/v1/tokens/gmail/exp/export");
    expect(exported.status).toBe(200);
    expect(await exported.json()).toMatchObject({
      integration: "gmail",
      userId: "exp",
      accessToken: "exp-access",
      refreshToken: "exp-refresh-SECRET",
    });
    const rows = await auditRows(h.db, "TOKEN_EXPORTED");
    expect(rows.at(-1)).toMatchObject({
      target: "token:gmail:exp",
      success: true,
      actor: expect.stringContaining("svc-exporter"),
    });
    expect(toJson(rows.at(-1))).not.toContain("exp-refresh-SECRET");
  });

  test("a non-whitelisted reader's list is empty and its status read is 403, each audited; a scoped policy admits only its integration", async () => {
    await put("gmail", "lst", { accessToken: "l1" });
    await put("github", "lst", { accessToken: "l2" });
    const listedBefore = (await auditRows(h.db, "TOKENS_LISTED")).length;
    const deniedBefore = (await auditRows(h.db, "ACCESS_DENIED")).length;
    const list = await a.call(a.stranger, "GET", "/v1/tokens?userId=lst");
    expect(list.status).toBe(200);
    expect(await list.json()).toEqual({ items: [], nextCursor: null });
    const listed = await auditRows(h.db, "TOKENS_LISTED");
    expect(listed.length).toBe(listedBefore + 1);
    expect(listed.at(-1)!.details).toMatchObject({ count: 0, filter: { userId: "lst" } });
    const status = await a.call(a.stranger, "GET", "/v1/tokens/gmail/lst/status");
    expect(status.status).toBe(403);
    expect((await status.json()).error.code).toBe("ACCESS_DENIED");
    expect((await auditRows(h.db, "ACCESS_DENIED")).length).toBe(deniedBefore + 1);

    // The whitelisted reader sees both; a requester admitted only for `gmail` sees only that one,
    // also when the path spells it `Gmail` (integration names are canonical lower case).
    const mine = (await (await a.call(a.reader, "GET", "/v1/tokens?userId=lst")).json()) as {
      items: Array<{ integration: string }>;
    };
    expect(mine.items.map((i) => i.integration).sort()).toEqual(["github", "gmail"]);
    const strangerId = (
      await h.db.prisma.requester.findFirstOrThrow({ where: { requesterId: { startsWith: "svc-stranger" } } })
    ).requesterId;
    expect(
      (
        await a.call(a.admin, "POST", "/v1/policies", {
          name: "gmail-only",
          type: "whitelist",
          scope: { integrations: ["gmail"] },
          config: { requesters: [strangerId] },
        })
      ).status,
    ).toBe(201);
    const scoped = (await (await a.call(a.stranger, "GET", "/v1/tokens?userId=lst")).json()) as {
      items: Array<{ integration: string }>;
    };
    expect(scoped.items.map((i) => i.integration)).toEqual(["gmail"]);
    expect((await a.call(a.stranger, "GET", "/v1/tokens/Gmail/lst/status")).status).toBe(200);
    const mixed = await a.call(a.stranger, "GET", "/v1/tokens/GMAIL/lst?refresh=never");
    expect(mixed.status).toBe(200);
    expect(await mixed.json()).toMatchObject({ integration: "gmail", accessToken: "l1" });
    expect((await a.call(a.stranger, "GET", "/v1/tokens/github/lst/status")).status).toBe(403);
    // Stored under the canonical name whatever the PUT path said.
    expect((await put("GitHub", "case", { accessToken: "c" })).status).toBe(201);
    expect(await h.db.prisma.oAuthToken.count({ where: { integration: "github", userId: "case" } })).toBe(1);
  });
});
