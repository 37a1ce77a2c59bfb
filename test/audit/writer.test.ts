/** The group-commit writer on both databases: batching, chain, checkpoints, secret guard, all-or-nothing batches. */
import { beforeEach, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { verifyPayload } from "../../src/crypto/sign.ts";
import { CHECKPOINT_TYP, genesisHash } from "../../src/audit/chain.ts";
import { AuditEventError } from "../../src/audit/event-guard.ts";
import { verifyAuditLog } from "../../src/audit/verify.ts";
import { loadMasterPublicKeys } from "../../src/keys/repository.ts";
import { liveChains } from "../../src/audit/writer.ts";
import { ConflictError, ServiceUnavailableError } from "../../src/errors.ts";
import type { AuditEvent } from "../../src/audit/types.ts";
import {
  asSuperuser,
  chainRows,
  sampleEvent,
  storeMasterKey,
  testKey,
  testMacKey,
  writerFor,
  type TestKey,
} from "./helpers.ts";

describeEachDb("audit writer", (h) => {
  let key: TestKey;
  beforeEach(async () => {
    key ??= await testKey();
    await asSuperuser(h.db, `TRUNCATE "audit_logs", "access_requests"`);
  });

  test("200 concurrent record() calls: 200 rows, one valid chain, fewer batches than rows", async () => {
    const w = writerFor(h.db, key);
    // Callers arrive over a few ticks, as concurrent requests would, not all in one.
    const receipts = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        if (i % 40 === 0) await new Promise((r) => setTimeout(r, 1));
        return w.record(sampleEvent(i));
      }),
    );
    const s = w.stats();
    console.log(`[${h.kind}] 200 rows in ${s.batches} batches`);
    expect(s.events).toBe(200);
    expect(s.batches).toBeLessThan(200);
    expect(new Set(receipts.map((r) => r.id)).size).toBe(200);
    expect(new Set(receipts.map((r) => r.seq)).size).toBe(200);
    expect(new Set(receipts.map((r) => r.chainId))).toEqual(new Set([s.chainId!]));
    expect(await h.db.prisma.auditLog.count({ where: { eventType: { not: "AUDIT_CHECKPOINT" } } })).toBe(200);
    // The chain is open and its tail unsigned, but a live writer holds it: not a finding.
    const v = await verifyAuditLog(h.db, { publicKeys: key.publicKeys, liveChains: (ids) => liveChains(h.db, ids) });
    expect(v).toMatchObject({ valid: true, chains: 1, checked: 201 });
    // Without that knowledge, the unsigned tail is reported.
    expect((await verifyAuditLog(h.db, { publicKeys: key.publicKeys })).findings.map((f) => f.kind)).toEqual([
      "unsealed-tail",
    ]);
    await w.close();
  }, 30_000);

  test("an idle writer starts writing a lone record() at once, not an event-loop turn later", async () => {
    const w = writerFor(h.db, key);
    await w.record(sampleEvent(0)); // opens the chain
    await new Promise((r) => setTimeout(r, 5)); // idle, in a later turn (as a request at one connection arrives)
    const before = w.stats().batches;
    const done = w.record(sampleEvent(1));
    await Promise.resolve(); // one microtask: no setImmediate, no I/O, has run
    expect(w.stats().batches).toBe(before + 1);
    expect((await done).seq).toBe(3n);
    await w.close();
  });

  test("a writer that recorded nothing appends nothing, not even at close (db:seed's second run relies on it)", async () => {
    const w = writerFor(h.db, key);
    await w.flush();
    await w.close();
    expect(await h.db.prisma.auditLog.count()).toBe(0);
    expect(w.stats()).toMatchObject({ batches: 0, rows: 0, chains: 0 });
  });

  test("the chain opens with a signed checkpoint over the genesis hash; rows link prevHash → hash", async () => {
    const w = writerFor(h.db, key, { chainId: "chain-fixed-id" });
    await w.record(sampleEvent(1));
    await w.record(sampleEvent(2));
    const rows = await chainRows(h.db, "chain-fixed-id");
    expect(rows.map((r) => r.seq)).toEqual(["1", "2", "3"]);
    expect(rows[0]!.eventType).toBe("AUDIT_CHECKPOINT");
    expect(rows[0]!.prevHash).toBe(genesisHash("chain-fixed-id"));
    const d = rows[0]!.details as { signature: string };
    const { payload } = await verifyPayload(d.signature, key.pair.publicJwk, { typ: CHECKPOINT_TYP, kid: "1" });
    expect(payload).toEqual({
      chainId: "chain-fixed-id",
      seq: 0,
      headHash: genesisHash("chain-fixed-id"),
      kind: "open",
    });
    expect(rows[1]!.prevHash).toBe(rows[0]!.hash);
    expect(rows[2]!.prevHash).toBe(rows[1]!.hash);
    expect(rows[1]!.timestamp).toMatch(/^\d{13}$/);
    await w.close();
  });

  test("a checkpoint every N event rows and one at close, each signing the head before it", async () => {
    const w = writerFor(h.db, key, { checkpointEvery: 5 });
    for (let i = 0; i < 12; i++) await w.record(sampleEvent(i)); // sequential: one batch each
    await w.close();
    const rows = await chainRows(h.db, (await h.db.prisma.auditLog.findFirstOrThrow()).chainId);
    const cps = rows.filter((r) => r.eventType === "AUDIT_CHECKPOINT");
    // seq 1 open; 5 events (2..6), checkpoint 7; 5 events (8..12), checkpoint 13; 2 events (14, 15), close 16
    expect(cps.map((r) => [r.seq, (r.details as { kind: string }).kind])).toEqual([
      ["1", "open"],
      ["7", "periodic"],
      ["13", "periodic"],
      ["16", "close"],
    ]);
    for (const cp of cps) {
      const d = cp.details as { chainId: string; seq: number; headHash: string; kind: string; signature: string };
      const { payload } = await verifyPayload(d.signature, key.pair.publicJwk, { typ: CHECKPOINT_TYP });
      expect(payload).toEqual({ chainId: cp.chainId, seq: Number(cp.seq) - 1, headHash: cp.prevHash, kind: d.kind });
    }
    expect(await verifyAuditLog(h.db, { publicKeys: key.publicKeys })).toMatchObject({
      valid: true,
      checkpoints: 4,
      unclosedChains: 0,
      unsignedTailRows: 0,
    });
    await expect(w.record(sampleEvent(99))).rejects.toBeInstanceOf(ServiceUnavailableError);
  });

  test("checkpoint verification fails with the wrong key, and with no key for the kid", async () => {
    const w = writerFor(h.db, key);
    await w.record(sampleEvent(1));
    await w.close();
    const other = await testKey(1); // same kid, different key pair
    const wrong = await verifyAuditLog(h.db, { publicKeys: other.publicKeys });
    expect(wrong.valid).toBe(false);
    expect(wrong.firstInvalid).toMatchObject({ seq: 1, reason: expect.stringContaining("does not verify") });
    const none = await verifyAuditLog(h.db, { publicKeys: () => undefined });
    expect(none.firstInvalid?.reason).toContain("unknown");
    expect(none.findings[0]?.kind).toBe("untrusted-key");
  });

  test("public keys for verification load from master_keys by version", async () => {
    await h.db.prisma.masterKey.deleteMany();
    await storeMasterKey(h.db, key);
    const w = writerFor(h.db, key);
    await w.record(sampleEvent(1));
    await w.close();
    expect(await verifyAuditLog(h.db, { ...(await loadMasterPublicKeys(h.db, testMacKey)) })).toMatchObject({
      valid: true,
      checkpoints: 2,
    });
  });

  test("without a signer checkpoints are written unsigned and verify reports them", async () => {
    const w = writerFor(h.db, undefined);
    await w.record(sampleEvent(1));
    await w.close();
    const v = await verifyAuditLog(h.db, { publicKeys: key.publicKeys });
    expect(v.firstInvalid).toMatchObject({ seq: 1, reason: "checkpoint is not signed" });
  });

  test("details keys named like secrets are refused before anything is written", async () => {
    const w = writerFor(h.db, key);
    const secretKeys = [
      "accessToken",
      "refresh_token",
      "apiKey",
      "secret",
      "clientSecret",
      "privateJwk",
      "seed",
      "seeds",
      "d",
      "password",
      "kek",
      "rootSeed",
      "idToken",
    ];
    for (const k of secretKeys) {
      await expect(w.record(sampleEvent(1, { details: { [k]: "x" } }))).rejects.toBeInstanceOf(AuditEventError);
      await expect(w.record(sampleEvent(1, { details: { grant: [{ nested: { [k]: "x" } }] } }))).rejects.toThrow(
        /looks like a secret/,
      );
    }
    // The message names the key path, never the value.
    const err = await w.record(sampleEvent(1, { details: { refreshToken: "rt-SECRET-VALUE" } })).catch((e: Error) => e);
    expect(String((err as Error).message)).not.toContain("rt-SECRET-VALUE");
    // Other malformed input is also refused up front rather than failing a whole batch in the database.
    await expect(w.record(sampleEvent(1, { actor: "a\u0000b" }))).rejects.toBeInstanceOf(AuditEventError);
    await expect(w.record(sampleEvent(1, { details: { n: Number.NaN } }))).rejects.toBeInstanceOf(AuditEventError);
    await expect(w.record(sampleEvent(1, { startTime: 1.5 }))).rejects.toBeInstanceOf(AuditEventError);
    await expect(w.record({ ...sampleEvent(1), eventType: "AUDIT_CHECKPOINT" })).rejects.toBeInstanceOf(
      AuditEventError,
    );
    // Harmless names pass.
    await w.record(sampleEvent(1, { details: { tokenType: "Bearer", keyVersion: 2, keyCount: 3, policyId: "p" } }));
    await w.flush();
    expect(await h.db.prisma.auditLog.count({ where: { eventType: { not: "AUDIT_CHECKPOINT" } } })).toBe(1);
    await w.close();
  });

  test("a batch is all or nothing: one attached access_requests row the database refuses rolls back every row of the batch", async () => {
    const w = writerFor(h.db, key);
    await w.record(sampleEvent(0)); // opens the chain
    const firstChain = w.stats().chainId;
    const ar = (id: string) => ({
      id,
      requesterId: "r-1",
      resourceType: "token",
      resource: { type: "token", integration: "gmail", userId: "u-1" },
      startTime: new Date(1_700_000_000_000),
      endTime: new Date(1_700_000_360_000),
      granted: true,
      policyIds: [],
    });
    const dup = "0190a000-0000-7000-8000-000000000001";
    // Same tick → same batch; the duplicate primary key fails the access_requests INSERT.
    const results = await Promise.allSettled([
      w.record({ event: sampleEvent(1, { target: "doomed-1" }), accessRequest: ar(dup) }),
      w.record({ event: sampleEvent(2, { target: "doomed-2" }), accessRequest: ar(dup) }),
      w.record(sampleEvent(3, { target: "doomed-3" })),
    ]);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ServiceUnavailableError);
    }
    expect(await h.db.prisma.auditLog.count({ where: { target: { startsWith: "doomed" } } })).toBe(0);
    expect(await h.db.prisma.accessRequest.count()).toBe(0);
    expect(w.stats().failedBatches).toBe(1);
    // It recovers by itself, on a new chain (the old head is not trusted after a failure).
    const ok = await w.record({ event: sampleEvent(4), accessRequest: ar("0190a000-0000-7000-8000-000000000002") });
    expect(ok.chainId).not.toBe(firstChain);
    expect(ok.seq).toBe(2n);
    expect(await h.db.prisma.accessRequest.count()).toBe(1);
    await w.close();
    // The abandoned first chain (its head uncertain) is sealed with a recovery checkpoint by the sweep.
    expect(await w.sealAbandonedChains()).toEqual([firstChain!]);
    expect(await verifyAuditLog(h.db, { publicKeys: key.publicKeys })).toMatchObject({
      valid: true,
      chains: 2,
      unclosedChains: 0,
    });
  });

  test("attached access_requests rows are stored field for field (one multi-row INSERT per batch)", async () => {
    const w = writerFor(h.db, key);
    const full = {
      id: "0190a000-0000-7000-8000-0000000000a1",
      requesterId: "r-1",
      resourceType: "token",
      resource: { type: "token", integration: "gmail", userId: 'o\'brien "q"' },
      startTime: new Date(1_700_000_000_123),
      endTime: new Date(1_700_000_360_456),
      purpose: "incident 'review'",
      granted: false,
      denialReason: "not whitelisted",
      policyIds: ["p-1", "p,2", 'p"3'],
      policyId: "p-1",
      keyCount: 7,
    };
    const bare = {
      id: "0190a000-0000-7000-8000-0000000000a2",
      requesterId: "r-2",
      resourceType: "timeslice",
      resource: { type: "timeslice" },
      startTime: new Date(5),
      endTime: new Date(5),
      granted: true,
      policyIds: [],
    };
    await Promise.all([
      w.record({ event: sampleEvent(1), accessRequest: full }),
      w.record({ event: sampleEvent(2), accessRequest: bare }),
    ]);
    const rows = await h.db.prisma.accessRequest.findMany({ orderBy: { id: "asc" } });
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject(full);
    expect(rows[1]).toMatchObject({ ...bare, purpose: null, denialReason: null, policyId: null, keyCount: null });
    expect(rows[1]!.createdAt).toBeInstanceOf(Date);
    await w.close();
  });

  test("a batch of plain events that fails at any step of its write (fault hook) leaves nothing and fails every caller with 503", async () => {
    for (const step of ["begin", "changed", "inserted"] as const) {
      let armed = true;
      const w = writerFor(h.db, key, {
        onStep: async (at, conn) => {
          if (at !== step || !armed) return;
          armed = false;
          expect(typeof (await conn.backendPid())).toBe("number"); // usable inside the write, on both databases
          throw new Error(`fault after ${at}`);
        },
      });
      const id = `0190a000-0000-7000-8000-00000000f${["begin", "changed", "inserted"].indexOf(step)}00`;
      const results = await Promise.allSettled([
        w.record(sampleEvent(1, { target: `fault-${step}` })),
        w.record({
          event: sampleEvent(2, { target: `fault-${step}` }),
          accessRequest: {
            id,
            requesterId: "r-1",
            resourceType: "timeslice",
            resource: { type: "timeslice" },
            startTime: new Date(1),
            endTime: new Date(2),
            granted: true,
            policyIds: [],
          },
        }),
      ]);
      for (const r of results) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ServiceUnavailableError);
      expect(await h.db.prisma.auditLog.count({ where: { target: `fault-${step}` } })).toBe(0);
      expect(await h.db.prisma.accessRequest.count({ where: { id } })).toBe(0);
      expect((await w.record(sampleEvent(3, { target: `after-${step}` }))).seq).toBe(2n); // a new chain
      await w.close();
    }
  });

  test("changes in one batch: a failing one fails alone with its own error and leaves nothing; the others commit with their rows", async () => {
    const w = writerFor(h.db, key);
    await w.record(sampleEvent(0)); // opens the chain
    let runs = 0;
    const event = (target: string): AuditEvent => ({
      eventType: "REQUESTER_CREATED",
      actor: "test",
      target,
      success: true,
      details: {},
    });
    const create = (requesterId: string, fail = false) =>
      w.apply({
        change: async (tx) => {
          runs += 1;
          const row = await tx.requester.create({ data: { requesterId, name: "batch" } });
          if (fail) throw new ConflictError("refused by the change");
          return row;
        },
        event: (row) => event(`requester:${row.requesterId}`),
      });
    // Same tick → same batch.
    const results = await Promise.allSettled([
      create("batch-ok-1"),
      create("batch-bad", true),
      create("batch-ok-2"),
      w.record(sampleEvent(5, { target: "batch-plain" })),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
    const names = (await h.db.prisma.requester.findMany({ where: { requesterId: { startsWith: "batch-" } } })).map(
      (r) => r.requesterId,
    );
    expect(names.sort()).toEqual(["batch-ok-1", "batch-ok-2"]);
    const targets = (await h.db.prisma.auditLog.findMany({ where: { target: { not: null } } })).map((r) => r.target);
    expect(targets).toEqual(expect.arrayContaining(["requester:batch-ok-1", "requester:batch-ok-2", "batch-plain"]));
    expect(targets).not.toContain("requester:batch-bad");
    // First without savepoints, up to the failing change (2 runs); then all three again, with a savepoint each.
    expect(runs).toBe(5);
    expect(
      await verifyAuditLog(h.db, { publicKeys: key.publicKeys, liveChains: (ids) => liveChains(h.db, ids) }),
    ).toMatchObject({ valid: true });
    await w.close();
    await h.db.prisma.requester.deleteMany({ where: { requesterId: { startsWith: "batch-" } } });
  });

  test("a signer failure fails the batch closed (no unsigned opening checkpoint is written)", async () => {
    const w = writerFor(h.db, undefined, { signer: () => Promise.reject(new Error("key service down")) });
    await expect(w.record(sampleEvent(1))).rejects.toBeInstanceOf(ServiceUnavailableError);
    expect(await h.db.prisma.auditLog.count()).toBe(0);
    await w.close();
  });
});
