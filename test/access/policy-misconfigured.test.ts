/**
 * A policy whose stored config does not parse under its type's schema compiles to a deny with
 * POLICY_MISCONFIGURED, and the store refuses to save one. From the attacker's side: SQL access
 * (or a careless hand edit) turning a whitelist's `requesters` into a string, which used to admit
 * every one-character requester id.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, bearer, type AccessHarness } from "./support.ts";

describeEachDb("misconfigured policies fail closed", (h) => {
  let x: AccessHarness;
  let admin: string;
  beforeAll(async () => {
    x = await accessHarness(h.db);
    admin = (await x.makeKey(["admin"])).apiKey;
  });
  afterAll(async () => x?.close());

  test('a whitelist hand-edited to requesters: "abc" admits nobody (not a, b or c) and every decision says POLICY_MISCONFIGURED', async () => {
    const created = await x.access.policies.create(
      { name: `wl-${h.kind}`, type: "whitelist", config: { requesters: ["abc"] } },
      "test",
    );
    await h.db.prisma.$executeRaw`UPDATE policies SET config = '{"requesters":"abc"}'::jsonb WHERE id = ${created.id}`;
    await x.access.policies.reload();
    const one = await x.makeKey(["reader"], { requesterId: "a" });
    const whole = await x.makeKey(["reader"], { requesterId: `abc` });
    const end = x.clock.now() - 3_600_000;
    for (const k of [one, whole]) {
      const res = await x.app.request(
        "/v1/access-requests",
        bearer(k.apiKey, {
          method: "POST",
          body: JSON.stringify({ resource: { type: "timeslice" }, timeRange: { start: end - 1000, end } }),
        }),
      );
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({
        granted: false,
        reasonCode: "POLICY_MISCONFIGURED",
        policyId: created.id,
      });
    }
    // Another whitelist admitting "a" does not help: the broken one denies.
    await x.access.policies.create(
      { name: `wl-a-${h.kind}`, type: "whitelist", config: { requesters: ["a"] } },
      "test",
    );
    const res = await x.app.request(
      "/v1/access-requests",
      bearer(one.apiKey, {
        method: "POST",
        body: JSON.stringify({ resource: { type: "timeslice" }, timeRange: { start: end - 1000, end } }),
      }),
    );
    expect(await res.json()).toMatchObject({ granted: false, reasonCode: "POLICY_MISCONFIGURED" });
    await x.access.policies.remove(created.id, "test");
  });

  test("the store refuses to save such a config, by POST or by PATCH (400, nothing written)", async () => {
    const before = await h.db.prisma.policy.count();
    for (const config of [
      { requesters: "abc" },
      { requesters: [1] },
      { departments: "eng" },
      { requesters: ["a"], extra: true },
    ]) {
      const res = await x.app.request(
        "/v1/policies",
        bearer(admin, { method: "POST", body: JSON.stringify({ name: "bad", type: "whitelist", config }) }),
      );
      expect(res.status).toBe(400);
    }
    const ok = await x.access.policies.create(
      { name: `ok-${h.kind}`, type: "whitelist", config: { requesters: ["z"] } },
      "test",
    );
    const patch = await x.app.request(
      `/v1/policies/${ok.id}`,
      bearer(admin, { method: "PATCH", body: JSON.stringify({ config: { requesters: "z" } }) }),
    );
    expect(patch.status).toBe(400);
    expect(await h.db.prisma.policy.count()).toBe(before + 1);
    expect((await x.access.policies.get(ok.id)).config).toEqual({ requesters: ["z"] });
  });
});
