/**
 * The one-statement batch and re-run changes, probed from an attacker's side: values JSON and jsonb
 * treat differently must hash the same in JS as they are stored, seq order and checkpoints inside
 * one batch, and a change whose first run fails commits exactly once.
 */
import { beforeEach, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { canonicalJson } from "../../src/crypto/canonical-json.ts";
import { verifyAuditLog } from "../../src/audit/verify.ts";
import { liveChains } from "../../src/audit/writer.ts";
import { ConflictError, ServiceUnavailableError } from "../../src/errors.ts";
import { webhookOutbox } from "../../src/webhooks/events.ts";
import { AuditEventError } from "../../src/audit/event-guard.ts";
import type { AuditEvent } from "../../src/audit/types.ts";
import { asSuperuser, chainRows, sampleEvent, testKey, writerFor, type TestKey } from "./helpers.ts";

// Values JSON text, jsonb and JS numbers disagree on (escapes, key order, number spelling, nesting).
const TRICKY: Array<Record<string, unknown>> = [
  { s: "emoji 👩🏽‍💻 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", rtl: "שלום עולם", comb: "\u00e9 vs e\u0301", sep: "\u2028\u2029", bom: "\ufeff" },
  { ctl: "\u0001\u001f\u007f\b\f\n\r\t", q: 'quote " back \\ slash /', html: "<script>&amp;</script>" },
  { big: 1e21, huge: Number.MAX_VALUE, tiny: Number.MIN_VALUE, neg0: -0, unsafe: 2 ** 53 + 2, frac: 0.1 + 0.2 },
  { exp: -1.5e-7, int: -9007199254740991, small: 1e-7, round: 123456789.12345679, hundred: 100 },
  { "": "empty key", "\u00e9": 1, e: 2, "e\u0301": 3, Z: 4, a: 5, "😀": 6, "\u007f": 7, " ": 8, "10": 9, "9": 10 },
  { deep: { a: [[[[{ b: [null, true, false, "", 0, [], {}] }]]]] }, arr: [3, 1, 2], obj: {} },
  JSON.parse('{"__proto__":{"polluted":1},"constructor":{"prototype":{"y":2}},"toString":"x"}'),
  { ts: new Date(Date.UTC(9999, 11, 31, 23, 59, 59, 999)).toISOString(), early: new Date(0).toISOString() },
];

describeEachDb("audit batch statement (review)", (h) => {
  let key: TestKey;
  beforeEach(async () => {
    key ??= await testKey();
    await asSuperuser(h.db, `TRUNCATE "audit_logs", "access_requests"`);
  });

  test("tricky details, actors and targets in one batch: stored rows hash as the writer hashed them, seq in order, checkpoints inside", async () => {
    // A checkpoint every 3 event rows: the batch holds several.
    const w = writerFor(h.db, key, { checkpointEvery: 3 });
    await w.record(sampleEvent(0)); // opens the chain
    const events: AuditEvent[] = TRICKY.map((details, i) => ({
      ...sampleEvent(i + 1),
      actor: i % 2 ? "requester-😀" : "requester-\u00e9",
      target: `token:gmail:user-"${i}"\\ \u2028`,
      startTime: i === 3 ? 0 : 253402300799999 - i,
      endTime: 253402300799999,
      details,
    }));
    const ar = (i: number) => ({
      requesterId: `r-${i}-ø`,
      resourceType: "token",
      resource: { type: "token", integration: "gmail", userId: `ü-${i}-👩🏽‍💻 "x"` },
      startTime: new Date(253402300799999 - i),
      endTime: new Date(253402300799999),
      purpose: 'why\u2028not \\ "quoted"',
      granted: i % 2 === 0,
      policyIds: ["p,1", 'p"2', "p\\3", "ü"],
      keyCount: 2 ** 31 - 1,
    });
    // Same tick → one batch.
    const before = w.stats().batches;
    const receipts = await Promise.all(events.map((event, i) => w.record({ event, accessRequest: ar(i) })));
    expect(w.stats().batches - before).toBe(1);
    // seq follows the call order, with a checkpoint after every third event row.
    expect(receipts.map((r) => Number(r.seq))).toEqual([3, 4, 6, 7, 8, 10, 11, 12]);
    const rows = await chainRows(h.db, receipts[0]!.chainId);
    expect(rows.map((r) => Number(r.seq))).toEqual(rows.map((_, i) => i + 1));
    expect(rows.filter((r) => r.eventType === "AUDIT_CHECKPOINT").map((r) => Number(r.seq))).toEqual([1, 5, 9, 13]);
    for (const [i, r] of receipts.entries()) {
      const stored = rows.find((row) => row.id === r.id)!;
      // What the database gives back is, canonically, what was hashed.
      expect(canonicalJson(stored.details)).toBe(canonicalJson(TRICKY[i]!));
      expect(stored.actor).toBe(events[i]!.actor);
      expect(stored.target).toBe(events[i]!.target!);
      expect(stored.startTime).toBe(String(events[i]!.startTime));
    }
    const requests = await h.db.prisma.accessRequest.findMany({ orderBy: { requesterId: "asc" } });
    expect(requests).toHaveLength(TRICKY.length);
    for (const [i, q] of requests.entries()) expect(q).toMatchObject({ ...ar(i), purpose: ar(i).purpose });
    expect(
      await verifyAuditLog(h.db, { publicKeys: key.publicKeys, liveChains: (ids) => liveChains(h.db, ids) }),
    ).toMatchObject({ valid: true, chains: 1 });
    await w.close();
    expect(await verifyAuditLog(h.db, { publicKeys: key.publicKeys })).toMatchObject({ valid: true, chains: 1 });
  });

  test("an attached access request the database cannot hold fails alone, up front: its batch-mates commit on the same chain", async () => {
    const w = writerFor(h.db, key);
    const first = await w.record(sampleEvent(0)); // opens the chain
    const ar = (over: Record<string, unknown> = {}) => ({
      requesterId: "r-1",
      resourceType: "timeslice",
      resource: { type: "timeslice" },
      startTime: new Date(0),
      endTime: new Date(253402300799999),
      granted: true,
      policyIds: ["p-1"],
      // 100 years of 1-second slices (SLICE_SECONDS=1): more than an int column holds.
      keyCount: 3_155_760_000,
      ...over,
    });
    const bad = [
      ar(),
      ar({ keyCount: 1.5 }),
      ar({ startTime: new Date(Number.NaN) }),
      ar({ purpose: "a\u0000b" }),
      ar({ denialReason: "\ud800" }),
      ar({ policyIds: ["p\u0000"] }),
      ar({ resource: { type: "timeslice", x: "\u0000" } }),
      ar({ requesterId: "" }),
    ];
    const results = await Promise.allSettled([
      w.record(sampleEvent(1, { target: "mate-1" })),
      ...bad.map((accessRequest, i) => w.record({ event: sampleEvent(10 + i, { target: `bad-${i}` }), accessRequest })),
      w.record({ event: sampleEvent(2, { target: "mate-2" }), accessRequest: ar({ keyCount: 2 ** 31 - 1 }) }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", ...bad.map(() => "rejected" as const), "fulfilled"]);
    for (const r of results.slice(1, -1)) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(AuditEventError);
    expect(w.stats().failedBatches).toBe(0);
    expect((results.at(-1) as PromiseFulfilledResult<{ chainId: string }>).value.chainId).toBe(first.chainId);
    expect(await h.db.prisma.auditLog.count({ where: { target: { startsWith: "bad-" } } })).toBe(0);
    expect(await h.db.prisma.accessRequest.count()).toBe(1);
    await w.close();
  });

  test("a change whose first run fails and whose second run succeeds commits exactly once, with one audit row", async () => {
    const w = writerFor(h.db, key);
    await w.record(sampleEvent(0)); // opens the chain
    const runs = { flaky: 0, bad: 0, good: 0 };
    const event = (target: string): AuditEvent => ({
      eventType: "REQUESTER_CREATED",
      actor: "test",
      target,
      success: true,
      details: {},
    });
    const results = await Promise.allSettled([
      w.apply({
        // Fails on its first run (no savepoints), succeeds on the second (its own savepoint).
        change: async (tx) => {
          runs.flaky += 1;
          const row = await tx.requester.create({ data: { requesterId: `flaky-${runs.flaky}`, name: "x" } });
          if (runs.flaky === 1) throw new ConflictError("first run refused");
          return row;
        },
        event: (row) => event(`requester:${row.requesterId}`),
      }),
      w.apply({
        change: async (tx) => {
          runs.bad += 1;
          await tx.requester.create({ data: { requesterId: `bad-${runs.bad}`, name: "x" } });
          throw new ConflictError("always refused");
        },
        event: () => event("never"),
      }),
      w.apply({
        change: async (tx) => {
          runs.good += 1;
          return tx.requester.create({ data: { requesterId: `good-${runs.good}`, name: "x" } });
        },
        event: (row) => event(`requester:${row.requesterId}`),
      }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    // The flaky change failed its first run, which rolled the whole batch back: it ran again and won.
    expect(runs.flaky).toBe(2);
    const names = (await h.db.prisma.requester.findMany()).map((r) => r.requesterId).sort();
    expect(names).toEqual(["flaky-2", `good-${runs.good}`]);
    const targets = (await h.db.prisma.auditLog.findMany({ where: { eventType: "REQUESTER_CREATED" } })).map(
      (r) => r.target,
    );
    expect(targets.sort()).toEqual(["requester:flaky-2", `requester:good-${runs.good}`]);
    expect(
      await verifyAuditLog(h.db, { publicKeys: key.publicKeys, liveChains: (ids) => liveChains(h.db, ids) }),
    ).toMatchObject({ valid: true });
    await w.close();
    await h.db.prisma.requester.deleteMany({});
  });

  test("webhook outbox rows exist exactly when their audit rows do: once after a re-run batch, none after a failed one", async () => {
    const hook = await h.db.prisma.webhook.create({
      data: {
        url: "http://127.0.0.1:9/x",
        events: ["token.deleted"],
        secretEncrypted: "x",
        kekId: "k",
        createdBy: "t",
      },
    });
    const w = writerFor(h.db, key, { outbox: webhookOutbox });
    await w.record(sampleEvent(0)); // opens the chain
    const deleted = (userId: string): AuditEvent => ({
      eventType: "TOKEN_DELETED",
      actor: "test",
      target: `token:gmail:${userId}`,
      success: true,
      details: { integration: "gmail", userId, count: 1 },
    });
    let runs = 0;
    // One change fails, so the batch runs twice: its events must still be in the outbox once.
    const results = await Promise.allSettled([
      w.apply({
        change: async () => {
          runs += 1;
        },
        event: () => deleted("u-1"),
      }),
      w.apply({
        change: async () => {
          throw new ConflictError("refused");
        },
        event: () => deleted("never"),
      }),
      w.record(deleted("u-2")),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(runs).toBe(2);
    // A batch the database refuses (duplicate access request id) leaves no event behind either.
    const ar = {
      id: "0190a000-0000-7000-8000-0000000000f1",
      requesterId: "r",
      resourceType: "token",
      resource: { type: "token" },
      startTime: new Date(0),
      endTime: new Date(0),
      granted: true,
      policyIds: [],
    };
    const failed = await Promise.allSettled([
      w.record({ event: deleted("doomed-1"), accessRequest: ar }),
      w.record({ event: deleted("doomed-2"), accessRequest: ar }),
    ]);
    for (const r of failed) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ServiceUnavailableError);
    const rows = await h.db.prisma.auditLog.findMany({
      where: { eventType: "TOKEN_DELETED" },
      orderBy: { seq: "asc" },
    });
    expect(rows.map((r) => r.target)).toEqual(["token:gmail:u-1", "token:gmail:u-2"]);
    const deliveries = await h.db.prisma.webhookDelivery.findMany({ where: { webhookId: hook.id } });
    expect(deliveries.map((d) => d.eventId).sort()).toEqual(rows.map((r) => r.id).sort());
    await w.close();
    await h.db.prisma.webhook.delete({ where: { id: hook.id } });
  });
});
