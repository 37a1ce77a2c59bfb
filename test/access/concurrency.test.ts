/** 200 concurrent access requests over a real port: 200 decisions, a valid chain, group-committed. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { provision, callApi, BOOTSTRAP_KEY } from "../tokens/helpers.ts";
import { verifyAuditLog } from "../../src/audit/verify.ts";
import { loadMasterPublicKeys } from "../../src/keys/repository.ts";
import { liveChains } from "../../src/audit/writer.ts";
import { testMacKey } from "../audit/helpers.ts";

describeEachDb("200 concurrent access requests", (h) => {
  let t: TestApp;
  let reader: string;
  let stranger: string;
  beforeAll(async () => {
    t = await startTestApp(h.db, { listen: true, env: { BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY } });
    ({ reader, stranger } = await provision(t.url, BOOTSTRAP_KEY, "-conc"));
  }, 60_000);
  afterAll(async () => t?.close());

  test("each gets its own decision row and access_requests row, the chain verifies, and batches < rows", async () => {
    // The last whole hour slice (the current one reaches into the future, which is denied).
    const end = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 1;
    const body = { resource: { type: "timeslice" }, timeRange: { start: end - 3_600_000 + 1, end }, purpose: "load" };
    const rowsBefore = await h.db.prisma.accessRequest.count();
    const decisionsBefore = await h.db.prisma.auditLog.count({
      where: { eventType: { in: ["ACCESS_GRANTED", "ACCESS_DENIED"] } },
    });
    const batchesBefore = t.runtime.audit.stats().batches;

    // Three in four from the whitelisted reader (granted), the rest from a stranger (denied).
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        callApi(t.url, i % 4 === 3 ? stranger : reader, "POST", "/v1/access-requests", body).then((r) => r.status),
      ),
    );
    expect(results.filter((s) => s === 201).length).toBe(150);
    expect(results.filter((s) => s === 403).length).toBe(50);

    const batches = t.runtime.audit.stats().batches - batchesBefore;
    expect(await h.db.prisma.accessRequest.count()).toBe(rowsBefore + 200);
    expect(
      await h.db.prisma.auditLog.count({ where: { eventType: { in: ["ACCESS_GRANTED", "ACCESS_DENIED"] } } }),
    ).toBe(decisionsBefore + 200);
    expect(batches).toBeLessThan(200);
    // The service is running: its chain's unsigned tail is held by a live writer.
    const report = await verifyAuditLog(h.db, {
      ...(await loadMasterPublicKeys(h.db, testMacKey)),
      liveChains: (ids) => liveChains(h.db, ids),
    });
    expect(report.valid).toBe(true);
    console.log(
      `[${h.kind}] concurrency: 200 access requests → 200 decision rows in ${batches} audit transactions; chain valid`,
    );
  }, 60_000);
});
