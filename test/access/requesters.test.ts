import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, bearer, type AccessHarness } from "./support.ts";
import { generateMasterKeyPair } from "../../src/crypto/master-key.ts";

describeEachDb("requesters over HTTP", (h) => {
  let x: AccessHarness;
  let admin: string;
  beforeAll(async () => {
    x = await accessHarness(h.db);
    admin = (await x.makeKey(["admin"])).apiKey;
  });
  afterAll(async () => x?.close());

  const req = (method: string, path: string, body?: unknown) =>
    x.app.request(path, bearer(admin, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }));

  test("create → get → patch → delete, audited; deleting removes its keys at once", async () => {
    const pair = await generateMasterKeyPair();
    const { kty, crv, x: px, y } = pair.publicJwk;
    const res = await req("POST", "/v1/requesters", {
      requesterId: "dana",
      name: "Dana",
      department: "research",
      email: "dana@example.com",
      publicKeyJwk: { kty, crv, x: px, y },
    });
    expect(res.status).toBe(201);
    const r = (await res.json()) as { id: string; requesterId: string; enabled: boolean; publicKeyJwk: unknown };
    expect(r).toMatchObject({
      requesterId: "dana",
      enabled: true,
      publicKeyJwk: { kty: "EC", crv: "P-256", x: px, y },
    });
    expect((await req("POST", "/v1/requesters", { requesterId: "dana", name: "Again" })).status).toBe(409);

    const key = (await (await req("POST", `/v1/requesters/${r.id}/api-keys`, { roles: ["reader"] })).json()) as {
      apiKey: string;
    };
    expect((await x.access.apiKeys.verify(key.apiKey)).department).toBe("research");
    const patched = await req("PATCH", `/v1/requesters/${r.id}`, {
      department: "ops",
      email: null,
      publicKeyJwk: null,
    });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({ department: "ops", email: null, publicKeyJwk: null });
    // The cached principal was dropped: the new department applies to the next request.
    expect((await x.access.apiKeys.verify(key.apiKey)).department).toBe("ops");

    const listed = (await (await req("GET", "/v1/requesters?requesterId=dana")).json()) as { items: { id: string }[] };
    expect(listed.items.map((i) => i.id)).toEqual([r.id]);
    expect((await req("DELETE", `/v1/requesters/${r.id}`)).status).toBe(204);
    expect((await req("GET", `/v1/requesters/${r.id}`)).status).toBe(404);
    await expect(x.access.apiKeys.verify(key.apiKey)).rejects.toMatchObject({ reason: "unknown-key" });
    const events = x.audit.events.filter((e) => e.target === "requester:dana").map((e) => e.eventType);
    expect(events).toEqual(["REQUESTER_CREATED", "REQUESTER_UPDATED", "REQUESTER_DELETED"]);
  });

  test("bad requesters are 400 with a clear message; requesterId is immutable", async () => {
    const pair = await generateMasterKeyPair();
    const cases: [unknown, string][] = [
      [{ name: "no id" }, "requesterId"],
      [{ requesterId: "has space", name: "x" }, "requesterId must be"],
      [{ requesterId: "e1", name: "x", email: "not-an-email" }, "email"],
      [{ requesterId: "e2", name: "x", publicKeyJwk: pair.privateJwk }, 'remove the private member \\"d\\"'],
      [{ requesterId: "e3", name: "x", publicKeyJwk: { kty: "RSA", n: "x", e: "AQAB" } }, "P-256"],
      [
        {
          requesterId: "e4",
          name: "x",
          publicKeyJwk: { kty: "EC", crv: "P-256", x: "A".repeat(43), y: "A".repeat(43) },
        },
        "not on the P-256 curve",
      ],
      [{ requesterId: "e5", name: "" }, "name must not be empty"],
      [{ requesterId: "e6", name: "x", role: "admin" }, "role"],
    ];
    for (const [body, text] of cases) {
      const res = await req("POST", "/v1/requesters", body);
      expect(res.status).toBe(400);
      expect(JSON.stringify(await res.json())).toContain(text);
    }
    const ok = (await (await req("POST", "/v1/requesters", { requesterId: "immutable", name: "x" })).json()) as {
      id: string;
    };
    expect((await req("PATCH", `/v1/requesters/${ok.id}`, { requesterId: "other" })).status).toBe(400);
    expect((await req("PATCH", `/v1/requesters/${ok.id}`, {})).status).toBe(400);
    expect((await req("GET", "/v1/requesters/immutable")).status).toBe(400);
    expect((await req("GET", "/v1/requesters?cursor=zzz")).status).toBe(400);
    expect((await req("GET", "/v1/requesters?limit=5000")).status).toBe(400);
  });

  test("list pagination by cursor covers every requester once", async () => {
    for (let i = 0; i < 5; i++) await req("POST", "/v1/requesters", { requesterId: `page-${i}`, name: `P${i}` });
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page = (await (await req("GET", `/v1/requesters?limit=2${cursor ? `&cursor=${cursor}` : ""}`)).json()) as {
        items: { id: string }[];
        nextCursor: string | null;
      };
      ids.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(await h.db.prisma.requester.count());
  });
});
