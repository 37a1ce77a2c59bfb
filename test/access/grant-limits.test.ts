// A grant's slice range must fit what the key version can derive (GGM depth 32: slices 0..2^32-1)
// and what access_requests.keyCount can record (int4). Past either bound the request is bad input:
// a 400 at plan time, before any decision, row or key material, never a 503 from a refused batch.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, bearer, type AccessHarness } from "./support.ts";

describeEachDb("grant range limits (SLICE_SECONDS=1)", (h) => {
  let x: AccessHarness;
  let reader: { apiKey: string; requesterId: string };
  beforeAll(async () => {
    x = await accessHarness(h.db, { env: { SLICE_SECONDS: "1" } });
    reader = await x.makeKey(["reader"], { requesterId: `limits-${h.kind}` });
    await x.access.policies.create(
      { name: "limits", type: "whitelist", config: { requesters: [reader.requesterId] } },
      "test",
    );
    // Future data admitted, so a range of decades can reach a grant at all.
    await x.access.policies.create(
      { name: "limits-future", type: "time-based", config: { timezone: "UTC", allowFuture: true } },
      "test",
    );
  });
  afterAll(async () => x?.close());

  const ask = (start: string | number, end: string | number) =>
    x.app.request(
      "/v1/access-requests",
      bearer(reader.apiKey, {
        method: "POST",
        body: JSON.stringify({ resource: { type: "timeslice" }, timeRange: { start, end }, purpose: "limits" }),
      }),
    );
  const decisions = () => h.db.prisma.accessRequest.count({ where: { requesterId: reader.requesterId } });

  test("more slices than keyCount can record: 400 naming the limit, no decision recorded", async () => {
    const before = await decisions();
    const res = await ask("2000-01-01T00:00:00Z", "2090-01-01T00:00:00Z");
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("VALIDATION_FAILED");
    expect(body.error.message).toContain("2147483647");
    expect(await decisions()).toBe(before);
  });

  test("a range ending past the last derivable slice: 400, no decision recorded", async () => {
    const before = await decisions();
    const res = await ask("2200-01-01T00:00:00Z", "2200-01-01T00:00:01Z");
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("VALIDATION_FAILED");
    expect(body.error.message).toContain("last time slice");
    expect(await decisions()).toBe(before);
  });

  test("a range inside both bounds is granted as usual and recorded with its keyCount", async () => {
    const before = await decisions();
    const res = await ask("2099-01-01T00:00:00Z", "2099-01-01T00:00:09Z");
    expect(res.status).toBe(201);
    const grant = (await res.json()) as { id: string };
    const row = await h.db.prisma.accessRequest.findUnique({ where: { id: grant.id } });
    expect(row?.keyCount).toBe(10);
    expect(await decisions()).toBe(before + 1);
  });
});
