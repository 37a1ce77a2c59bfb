/**
 * NUL bytes and unpaired surrogates in any string a client sends are a 400 in the one error
 * shape, with nothing written — never the database's 500 (PostgreSQL text/jsonb cannot hold NUL)
 * or a 503. From the attacker's side: an admin or reader key sending such strings everywhere.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, bearer, type AccessHarness } from "../access/support.ts";
import { findUnsafeText, isSafeText } from "../../src/lib/text.ts";

const NUL = "a\u0000b";
const LONE_HIGH = "a\ud800b";
const LONE_LOW = "\udc00";
const BAD = [NUL, LONE_HIGH, LONE_LOW];

test("isSafeText / findUnsafeText", () => {
  expect(isSafeText("héllo 😀")).toBe(true);
  for (const s of BAD) expect(isSafeText(s)).toBe(false);
  expect(findUnsafeText({ a: [1, { b: "ok" }, { c: NUL }] })).toEqual(["a", 2, "c"]);
  expect(findUnsafeText({ [LONE_HIGH]: 1 })).toEqual([]);
  expect(findUnsafeText({ a: ["x", "y"] })).toBeNull();
});

describeEachDb("NUL and unpaired surrogates are refused with 400", (h) => {
  let x: AccessHarness;
  let admin: string;
  let reader: string;
  let requesterUuid: string;
  beforeAll(async () => {
    x = await accessHarness(h.db);
    admin = (await x.makeKey(["admin"])).apiKey;
    const r = await x.makeKey(["reader", "writer"], { requesterId: `nul-reader-${h.kind}` });
    reader = r.apiKey;
    requesterUuid = r.requesterUuid;
    await x.access.policies.create(
      { name: `nul-wl-${h.kind}`, type: "whitelist", config: { requesters: [r.requesterId] } },
      "test",
    );
  });
  afterAll(async () => x?.close());

  const send = (key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    x.app.request(
      path,
      bearer(key, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }),
    );
  const rows = async () => ({
    requesters: await h.db.prisma.requester.count(),
    policies: await h.db.prisma.policy.count(),
    accessRequests: await h.db.prisma.accessRequest.count(),
    apiKeys: await h.db.prisma.apiKey.count(),
  });
  const expect400 = async (res: Response, what: string) => {
    const text = await res.text();
    if (res.status !== 400) throw new Error(`${what}: expected 400, got ${res.status} ${text}`);
    expect(JSON.parse(text)).toMatchObject({ error: { code: "VALIDATION_FAILED" } });
  };

  test("in requester fields, metadata (values and keys), policy names, whitelist departments, purposes, simulate, API key names", async () => {
    const before = await rows();
    const range = { start: 0, end: 1000 };
    for (const bad of BAD) {
      await expect400(
        await send(admin, "POST", "/v1/requesters", { requesterId: `n-${h.kind}`, name: bad }),
        "requester name",
      );
      await expect400(
        await send(admin, "POST", "/v1/requesters", { requesterId: `n-${h.kind}`, name: "N", department: bad }),
        "department",
      );
      await expect400(
        await send(admin, "POST", "/v1/requesters", { requesterId: `n-${h.kind}`, name: "N", metadata: { note: bad } }),
        "metadata value",
      );
      await expect400(
        await send(admin, "POST", "/v1/requesters", {
          requesterId: `n-${h.kind}`,
          name: "N",
          metadata: { deep: [{ x: bad }] },
        }),
        "nested metadata",
      );
      await expect400(
        await send(admin, "POST", "/v1/requesters", { requesterId: `n-${h.kind}`, name: "N", metadata: { [bad]: 1 } }),
        "metadata key",
      );
      await expect400(
        await send(admin, "POST", "/v1/requesters", {
          requesterId: `n-${h.kind}`,
          name: "N",
          email: `a${bad}@example.com`,
        }),
        "email",
      );
      await expect400(
        await send(admin, "PATCH", `/v1/requesters/${requesterUuid}`, { department: bad }),
        "patched department",
      );
      await expect400(
        await send(admin, "PATCH", `/v1/requesters/${requesterUuid}`, { metadata: { a: bad } }),
        "patched metadata",
      );
      await expect400(
        await send(admin, "POST", "/v1/policies", {
          name: `p${bad}`,
          type: "whitelist",
          config: { requesters: ["x"] },
        }),
        "policy name",
      );
      await expect400(
        await send(admin, "POST", "/v1/policies", { name: "p", type: "whitelist", config: { departments: [bad] } }),
        "whitelist department",
      );
      await expect400(
        await send(admin, "POST", "/v1/policies", { name: "p", type: "purpose", config: { allowed: [bad] } }),
        "allowed purpose",
      );
      await expect400(
        await send(admin, "POST", "/v1/policies", { name: "p", type: "time-based", config: { timezone: bad } }),
        "timezone",
      );
      await expect400(
        await send(admin, "POST", "/v1/policies", {
          name: "p",
          type: "whitelist",
          config: { requesters: ["x"] },
          description: bad,
        }),
        "description",
      );
      await expect400(
        await send(reader, "POST", "/v1/access-requests", {
          resource: { type: "timeslice" },
          timeRange: range,
          purpose: bad,
        }),
        "purpose",
      );
      await expect400(
        await send(reader, "POST", "/v1/access-requests", {
          resource: { type: "timeslice" },
          timeRange: { start: `2026-01-01T00:00:00Z${bad}`, end: 5 },
        }),
        "instant",
      );
      await expect400(
        await send(admin, "POST", "/v1/policies/simulate", {
          requesterId: "x",
          department: bad,
          resource: { type: "timeslice" },
          timeRange: range,
        }),
        "simulate department",
      );
      await expect400(
        await send(admin, "POST", `/v1/requesters/${requesterUuid}/api-keys`, { roles: ["reader"], name: bad }),
        "API key name",
      );
    }
    // Query strings: a surrogate cannot be percent-encoded (it decodes to U+FFFD), NUL can.
    {
      const q = encodeURIComponent(NUL);
      await expect400(await send(reader, "GET", `/v1/tokens/gmail/u1?purpose=${q}`), "?purpose");
      await expect400(await send(admin, "GET", `/v1/audit-logs?actor=${q}`), "audit actor");
      await expect400(await send(admin, "GET", `/v1/access-requests?requesterId=${q}`), "access-request filter");
      await expect400(await send(admin, "GET", `/v1/access-requests?cursor=${q}`), "cursor");
    }
    expect(await rows()).toEqual(before);
  });

  test("an X-Purpose header longer than the limit is a 400, not truncated", async () => {
    const before = await rows();
    await expect400(
      await send(reader, "GET", "/v1/tokens/gmail/u1", undefined, { "x-purpose": "p".repeat(501) }),
      "long X-Purpose",
    );
    await expect400(
      await send(reader, "GET", "/v1/tokens/gmail/u1", undefined, { "x-purpose": "a\u0001b" }),
      "control X-Purpose",
    );
    expect(await rows()).toEqual(before);
  });
});
