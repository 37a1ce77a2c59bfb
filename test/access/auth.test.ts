import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, type AccessHarness } from "./support.ts";
import { generateApiKey } from "../../src/access/api-key-format.ts";
import { BOOTSTRAP_REQUESTER_ID, ensureBootstrapAdmin } from "../../src/access/bootstrap.ts";
import { createLogger } from "../../src/log.ts";
import { ConfigError } from "../../src/errors.ts";

describeEachDb("authentication failures", (h) => {
  let x: AccessHarness;
  beforeAll(async () => {
    x = await accessHarness(h.db, { env: { AUTH_FAILURES_PER_MINUTE: "5", TRUST_PROXY: "1" } });
  });
  afterAll(async () => x?.close());

  const from = (addr: string, key?: string) =>
    x.app.request("/v1/policies", {
      headers: { "x-forwarded-for": addr, ...(key ? { authorization: `Bearer ${key}` } : {}) },
    });

  test("401 is generic, audited as AUTH_FAILED with the keyId and reason but never the secret", async () => {
    const guess = generateApiKey().apiKey;
    const res = await from("10.0.0.9", guess);
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error).toMatchObject({ code: "UNAUTHENTICATED", message: "missing or invalid API key" });
    const row = x.audit.events.filter((e) => e.eventType === "AUTH_FAILED").at(-1)!;
    expect(row).toMatchObject({
      actor: guess.split("_")[1],
      success: false,
      details: { reason: "unknown-key", address: "10.0.0.9" },
    });
    expect(JSON.stringify(x.audit.events)).not.toContain(guess.split("_").slice(2).join("_"));
    // Stored too: the failure is in audit_logs.
    expect(await h.db.prisma.auditLog.count({ where: { eventType: "AUTH_FAILED", actor: guess.split("_")[1]! } })).toBe(
      1,
    );
    const wrongScheme = await x.app.request("/v1/policies", {
      headers: { "x-forwarded-for": "10.0.0.9", authorization: `Basic ${btoa("a:b")}` },
    });
    expect(wrongScheme.status).toBe(401);
  });

  test("after N failures one address gets 429 with Retry-After and no database work; another address does not", async () => {
    const good = await x.makeKey(["admin"]);
    const fresh = await x.makeKey(["admin"]);
    expect((await from("10.0.0.1", good.apiKey)).status).toBe(200); // now in the verification cache
    for (let i = 0; i < 5; i++) expect((await from("10.0.0.1", generateApiKey().apiKey)).status).toBe(401);
    const auditedBefore = x.audit.events.length;
    const limited = await from("10.0.0.1", generateApiKey().apiKey);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe("RATE_LIMITED");
    expect((await from("10.0.0.1")).status).toBe(429);
    expect(x.audit.events.length).toBe(auditedBefore); // limited failures are not written one by one
    // A key verified moments ago is not a guess; an unverified one waits like everyone there.
    expect((await from("10.0.0.1", good.apiKey)).status).toBe(200);
    expect((await from("10.0.0.1", fresh.apiKey)).status).toBe(429);
    // Another address is unaffected.
    expect((await from("10.0.0.2", generateApiKey().apiKey)).status).toBe(401);
    expect((await from("10.0.0.2", fresh.apiKey)).status).toBe(200);
    // The window slides: a minute later the address may try again; the next row counts what was dropped.
    x.clock.advance(61_000);
    expect((await from("10.0.0.1", generateApiKey().apiKey)).status).toBe(401);
    const last = x.audit.events.filter((e) => e.eventType === "AUTH_FAILED").at(-1)!;
    expect(last.details).toMatchObject({ address: "10.0.0.1", suppressedSinceLast: 3 });
  });
});

describeEachDb("BOOTSTRAP_ADMIN_KEY", (h) => {
  let x: AccessHarness;
  beforeAll(async () => {
    x = await accessHarness(h.db);
  });
  afterAll(async () => x?.close());

  test("malformed → ConfigError saying how to make one", async () => {
    const err = await ensureBootstrapAdmin({
      db: h.db,
      audit: x.audit,
      log: createLogger("silent"),
      key: "hunter2",
    }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain("BOOTSTRAP_ADMIN_KEY");
    expect(err.message).toContain("generateApiKey");
    expect(err.message).not.toContain("hunter2");
  });

  test("creates bootstrap-admin with exactly that key, once, even when two start together", async () => {
    const { apiKey, keyId } = generateApiKey();
    const log = createLogger("silent");
    const results = await Promise.all(
      [1, 2, 3].map(() => ensureBootstrapAdmin({ db: h.db, audit: x.audit, log, key: apiKey })),
    );
    expect(results.filter((r) => r === "created")).toHaveLength(1);
    expect(await ensureBootstrapAdmin({ db: h.db, audit: x.audit, log, key: apiKey })).toBe("admin-exists");
    expect(await h.db.prisma.apiKey.count({ where: { roles: { has: "admin" } } })).toBe(1);
    const p = await x.access.apiKeys.verify(apiKey);
    expect(p).toMatchObject({ requesterId: BOOTSTRAP_REQUESTER_ID, keyId, roles: ["admin"] });
    const res = await x.app.request("/v1/requesters", { headers: { authorization: `Bearer ${apiKey}` } });
    expect(res.status).toBe(200);
    // Another key in the variable later does not add a second admin.
    expect(await ensureBootstrapAdmin({ db: h.db, audit: x.audit, log, key: generateApiKey().apiKey })).toBe(
      "admin-exists",
    );
  });
});
