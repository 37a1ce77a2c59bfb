import { afterAll, beforeAll, expect, test } from "bun:test";
import { compactDecrypt, decodeProtectedHeader } from "jose";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, bearer, type AccessHarness } from "./support.ts";
import { encryptEnvelope, decryptEnvelopeToString } from "../../src/crypto/envelope.ts";
import { leafFromSubtree } from "../../src/crypto/ggm.ts";
import { sliceIndex, sliceKid } from "../../src/crypto/slice-keys.ts";
import { generateMasterKeyPair } from "../../src/crypto/master-key.ts";
import { fromBase64url } from "../../src/crypto/bytes.ts";
import { DataViewer } from "../../src/client/data-viewer.ts";
import type { Grant } from "../../src/client/types.ts";

const HOUR = 3_600_000;
const CTX = "sensor:temp";

describeEachDb("access requests", (h) => {
  let x: AccessHarness;
  let alice: { apiKey: string; requesterId: string };
  let bob: { apiKey: string; requesterId: string };
  let admin: string;
  let now: number;
  let e: number;

  beforeAll(async () => {
    x = await accessHarness(h.db, { listen: true });
    now = x.clock.now();
    e = sliceIndex(now, 3600);
    alice = await x.makeKey(["reader"], { requesterId: `alice-${h.kind}` });
    bob = await x.makeKey(["reader"], { requesterId: `bob-${h.kind}` });
    admin = (await x.makeKey(["admin"])).apiKey;
    await x.access.policies.create(
      { name: "readers", type: "whitelist", config: { requesters: [alice.requesterId] } },
      "test",
    );
  });
  afterAll(async () => x?.close());

  const seal = async (slice: number, text: string) => {
    const k = await x.keyVersion.deriver.get(slice);
    const ts = slice * HOUR + 1234;
    return encryptEnvelope(text, {
      publicKey: k.publicJwk,
      kid: sliceKid(x.keyVersion.version, slice),
      ts,
      ctx: CTX,
      sliceSeconds: 3600,
    });
  };
  const ask = (key: string, body: unknown) =>
    fetch(`${x.url}/v1/access-requests`, bearer(key, { method: "POST", body: JSON.stringify(body) }));

  test("over HTTP: a whitelisted reader gets keys that open exactly the granted slices; another reader gets 403; both recorded once", async () => {
    const from = e - 3;
    const to = e - 1;
    const inside = await Promise.all([from, from + 1, to].map((s) => seal(s, `reading ${s}`)));
    const before = await seal(from - 1, "just before");
    const after = await seal(to + 1, "just after");

    const res = await ask(alice.apiKey, {
      resource: { type: "timeslice" },
      timeRange: { start: new Date(from * HOUR).toISOString(), end: to * HOUR + 5 },
      purpose: "analysis",
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const grant = (await res.json()) as Grant;
    expect(grant).toMatchObject({ granted: true, keyVersion: 1, sliceSeconds: 3600, slices: { from, to } });
    expect(Date.parse(grant.expiresAt)).toBe(now + HOUR);
    expect(grant.keys!.map((k) => k.slice)).toEqual([from, from + 1, to]);
    expect(grant.seeds!.length).toBeGreaterThan(0);

    // Per-slice keys open the slices inside and nothing outside.
    for (const [i, jwe] of inside.entries()) {
      const k = grant.keys![i]!;
      expect(await decryptEnvelopeToString(jwe, { privateKey: k.privateJwk, expectedCtx: CTX })).toBe(
        `reading ${k.slice}`,
      );
    }
    for (const outside of [before, after]) {
      for (const k of grant.keys!)
        await expect(decryptEnvelopeToString(outside, { privateKey: k.privateJwk, expectedCtx: CTX })).rejects.toThrow(
          "decryption failed",
        );
      // Seeds cannot reach a leaf outside their subtrees.
      const slice = outside === before ? from - 1 : to + 1;
      for (const s of grant.seeds!)
        expect(() => leafFromSubtree(fromBase64url(s.seed), s.depth, s.index, slice)).toThrow();
    }
    // Seeds alone (as the SDK uses them) open the inside too.
    const viewer = await DataViewer.fromGrant({ ...grant, keys: [] });
    expect(await viewer.decryptToString(inside[1]!, { expectedCtx: CTX })).toBe(`reading ${from + 1}`);
    await expect(viewer.decryptToString(after, { expectedCtx: CTX })).rejects.toThrow();

    const denied = await ask(bob.apiKey, {
      resource: { type: "timeslice" },
      timeRange: { start: from * HOUR, end: to * HOUR },
    });
    expect(denied.status).toBe(403);
    const d = (await denied.json()) as Record<string, unknown>;
    expect(d).toMatchObject({ granted: false, error: { code: "ACCESS_DENIED" }, reasonCode: "NOT_WHITELISTED" });
    expect(typeof d.id).toBe("string");
    expect(typeof d.reason).toBe("string");
    expect(d.policyId).toBe(x.access.policies.compiled().all[0]!.record.id);
    expect(JSON.stringify(d)).not.toContain("privateJwk");

    for (const [id, granted, who] of [
      [grant.id, true, alice.requesterId],
      [d.id as string, false, bob.requesterId],
    ] as const) {
      const row = await h.db.prisma.accessRequest.findUnique({ where: { id } });
      expect(row).toMatchObject({ requesterId: who, granted, resourceType: "timeslice", keyCount: granted ? 3 : null });
      const decisions = await h.db.prisma.auditLog.findMany({
        where: {
          eventType: { in: ["ACCESS_GRANTED", "ACCESS_DENIED"] },
          details: { path: ["accessRequestId"], equals: id },
        },
      });
      expect(decisions).toHaveLength(1);
      expect(decisions[0]!.eventType).toBe(granted ? "ACCESS_GRANTED" : "ACCESS_DENIED");
      expect(JSON.stringify(decisions[0]!.details)).not.toMatch(/"d"|seed|privateJwk/);
    }
  });

  test("more than 64 slices: seeds only; keyCount recorded", async () => {
    const res = await ask(alice.apiKey, {
      resource: { type: "timeslice" },
      timeRange: { start: (e - 101) * HOUR, end: (e - 1) * HOUR },
    });
    expect(res.status).toBe(201);
    const g = (await res.json()) as Grant;
    expect(g.covered).toEqual({
      start: new Date((e - 101) * HOUR).toISOString(),
      end: new Date(e * HOUR - 1).toISOString(),
    });
    expect(g.keys).toEqual([]);
    expect(g.seeds!.length).toBeLessThanOrEqual(64);
    expect((await h.db.prisma.accessRequest.findUnique({ where: { id: g.id } }))!.keyCount).toBe(101);
  });

  test("a requester with a registered public key gets the whole payload as a JWE only it can open", async () => {
    const pair = await generateMasterKeyPair();
    const { kty, crv, x: px, y } = pair.publicJwk;
    const carol = await x.makeKey(["reader"], {
      requesterId: `carol-${h.kind}`,
      publicKeyJwk: { kty, crv, x: px, y, kid: "carol-1" },
    });
    await x.access.policies.create(
      { name: `carol-${h.kind}`, type: "whitelist", config: { requesters: [carol.requesterId] } },
      "test",
    );
    const res = await ask(carol.apiKey, {
      resource: { type: "timeslice" },
      timeRange: { start: (e - 2) * HOUR, end: (e - 1) * HOUR },
    });
    expect(res.status).toBe(201);
    const g = (await res.json()) as Grant;
    expect(g.keys).toBeUndefined();
    expect(g.seeds).toBeUndefined();
    expect(decodeProtectedHeader(g.encrypted!)).toMatchObject({
      alg: "ECDH-ES",
      enc: "A256GCM",
      kid: "carol-1",
      gid: g.id,
      ver: 1,
    });
    const mine = { kty, crv, x: px, y, d: pair.privateJwk.d };
    const { plaintext } = await compactDecrypt(g.encrypted!, mine);
    const inner = JSON.parse(new TextDecoder().decode(plaintext)) as { keys: { slice: number }[]; seeds: unknown[] };
    expect(inner.keys.map((k) => k.slice)).toEqual([e - 2, e - 1]);
    const other = await generateMasterKeyPair();
    const { alg: _a, use: _u, ...otherJwk } = other.privateJwk;
    await expect(compactDecrypt(g.encrypted!, otherJwk)).rejects.toThrow();
    // The SDK opens it with the private key.
    const viewer = await DataViewer.fromGrant(g, { privateKeyJwk: { ...mine, alg: "ECDH-ES" } });
    expect(await viewer.decryptToString(await seal(e - 2, "for carol"), { expectedCtx: CTX })).toBe("for carol");
  });

  test("bad bodies are 400 and leave no row; the requester is never taken from the body", async () => {
    const count = () => h.db.prisma.accessRequest.count();
    const n = await count();
    for (const body of [
      {},
      { resource: { type: "timeslice" }, timeRange: { start: 10, end: 5 } },
      { resource: { type: "timeslice" }, timeRange: { start: "yesterday", end: 5 } },
      { resource: { type: "timeslice" }, timeRange: { start: 0, end: 5 }, requesterId: alice.requesterId },
      { resource: { type: "token", integration: "gmail", userId: "u1" }, timeRange: { start: 0, end: 5 } },
    ]) {
      const res = await ask(bob.apiKey, body);
      expect(res.status).toBe(400);
    }
    expect(await count()).toBe(n);
  });

  test("the decision cannot be made durable → 503, no key material, no row", async () => {
    const n = await h.db.prisma.accessRequest.count();
    x.audit.failing = true;
    try {
      const res = await ask(alice.apiKey, {
        resource: { type: "timeslice" },
        timeRange: { start: (e - 1) * HOUR, end: e * HOUR },
      });
      expect(res.status).toBe(503);
      const body = await res.text();
      expect(JSON.parse(body)).toMatchObject({ error: { code: "SERVICE_UNAVAILABLE" } });
      expect(body).not.toMatch(/keys|seeds|privateJwk/);
    } finally {
      x.audit.failing = false;
    }
    expect(await h.db.prisma.accessRequest.count()).toBe(n);
  });

  test("simulate: the decision and why, for any requester; no keys, no access_requests row, audited ACCESS_SIMULATED", async () => {
    const n = await h.db.prisma.accessRequest.count();
    const sim = async (body: unknown) =>
      x.app.request("/v1/policies/simulate", bearer(admin, { method: "POST", body: JSON.stringify(body) }));
    const res = await sim({
      requesterId: alice.requesterId,
      resource: { type: "timeslice" },
      timeRange: { start: (e - 2) * HOUR, end: (e - 1) * HOUR },
    });
    expect(res.status).toBe(200);
    const s = (await res.json()) as Record<string, unknown>;
    expect(s).toMatchObject({
      granted: true,
      reasonCode: "GRANTED",
      requester: { exists: true },
      slices: { from: e - 2, to: e - 1, keyCount: 2 },
    });
    expect(JSON.stringify(s)).not.toMatch(/privateJwk|"seed"/);
    const no = (await (
      await sim({ requesterId: "nobody", resource: { type: "timeslice" }, timeRange: { start: 0, end: 1 } })
    ).json()) as Record<string, unknown>;
    expect(no).toMatchObject({ granted: false, reasonCode: "NOT_WHITELISTED", requester: { exists: false } });
    expect((no.evaluated as unknown[]).length).toBeGreaterThan(0);
    expect(await h.db.prisma.accessRequest.count()).toBe(n);
    expect(x.audit.events.filter((ev) => ev.eventType === "ACCESS_SIMULATED")).toHaveLength(2);
    expect((await sim({ resource: { type: "timeslice" }, timeRange: { start: 0, end: 1 } })).status).toBe(400);
  });

  test("listing: filters and cursor pagination, newest first; bad cursor 400", async () => {
    for (let i = 0; i < 5; i++)
      await ask(bob.apiKey, { resource: { type: "timeslice" }, timeRange: { start: i, end: i + 1 } });
    const list = async (q: string) => {
      const res = await x.app.request(`/v1/access-requests?${q}`, bearer(admin));
      expect(res.status).toBe(200);
      return (await res.json()) as {
        items: { id: string; requesterId: string; granted: boolean; createdAt: string }[];
        nextCursor: string | null;
      };
    };
    const all = await list(`requesterId=${bob.requesterId}&limit=200`);
    expect(all.items.length).toBeGreaterThanOrEqual(6);
    expect(all.items.every((r) => r.requesterId === bob.requesterId && !r.granted)).toBe(true);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await list(`requesterId=${bob.requesterId}&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((r) => r.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(all.items.map((r) => r.id));
    const granted = (await list("granted=true")).items;
    expect(granted.length).toBeGreaterThan(0); // or the filter check below holds for nothing
    expect(granted.every((r) => r.granted)).toBe(true);
    expect((await list(`from=${Date.now() + 60_000}`)).items).toEqual([]);
    // A list window is half-open [from, to): a row made at exactly `to` is out, at exactly `from` in.
    const newest = all.items[0]!;
    const at = Date.parse(newest.createdAt);
    const q = `requesterId=${bob.requesterId}&limit=200`;
    expect((await list(`${q}&to=${at}`)).items.map((r) => r.id)).not.toContain(newest.id);
    expect((await list(`${q}&from=${at}`)).items.map((r) => r.id)).toContain(newest.id);
    expect((await list(`${q}&from=${new Date(at).toISOString()}&to=${at + 1}`)).items.map((r) => r.id)).toContain(
      newest.id,
    );
    for (const bad of ["cursor=abc", "granted=maybe", "limit=0", "from=yesterday", "resourceType=file", "nope=1"]) {
      expect((await x.app.request(`/v1/access-requests?${bad}`, bearer(admin))).status).toBe(400);
    }
  });
  test("(runs last: rotates) after a rotation, keyVersion asks for the decrypt-only version that older data is sealed under; an unknown one is an audited denial", async () => {
    const slice = e - 2;
    const old = await seal(slice, "sealed before the rotation");
    const rotated = await x.runtime.keys.rotate({ actor: "test" });
    const body = {
      resource: { type: "timeslice" },
      timeRange: { start: slice * HOUR, end: slice * HOUR },
      purpose: "audit",
    };
    const current = (await (await ask(alice.apiKey, body)).json()) as Grant;
    expect(current.keyVersion).toBe(rotated.version);
    await expect((await DataViewer.fromGrant(current)).decrypt(old, { expectedCtx: CTX })).rejects.toThrow(
      /key version/,
    );

    const res = await ask(alice.apiKey, { ...body, keyVersion: x.keyVersion.version });
    expect(res.status).toBe(201);
    const grant = (await res.json()) as Grant;
    expect(grant.keyVersion).toBe(x.keyVersion.version);
    expect(await (await DataViewer.fromGrant(grant)).decryptToString(old, { expectedCtx: CTX })).toBe(
      "sealed before the rotation",
    );

    const unknown = await ask(alice.apiKey, { ...body, keyVersion: 999 });
    expect(unknown.status).toBe(403);
    expect(await unknown.json()).toMatchObject({
      granted: false,
      error: { code: "ACCESS_DENIED" },
      reasonCode: "KEY_UNAVAILABLE",
    });
    expect((await ask(alice.apiKey, { ...body, keyVersion: "1" })).status).toBe(400);
  });
});
