/**
 * Completeness machinery of the audit writer, on both databases: time-based checkpoints (with a
 * controlled clock, no sleeps), live writers holding their chains, abandoned chains sealed by a
 * recovery checkpoint naming their last row, and every signed checkpoint appended to the anchor log.
 */
import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { describeEachDb } from "../support/databases.ts";
import { verifyAuditLog } from "../../src/audit/verify.ts";
import { AnchorFile, readAnchorFile } from "../../src/audit/anchors.ts";
import { liveChains } from "../../src/audit/writer.ts";
import { asSuperuser, chainRows, sampleEvent, testClock, testKey, writerFor, type TestKey } from "./helpers.ts";

describeEachDb("audit completeness", (h) => {
  let key: TestKey;
  let dir: string;
  beforeAll(async () => {
    key = await testKey();
    dir = mkdtempSync(join(tmpdir(), "chronokms-completeness-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(async () => {
    await asSuperuser(h.db, `TRUNCATE "audit_logs"`);
  });
  const verify = () => verifyAuditLog(h.db, { publicKeys: key.publicKeys, liveChains: (ids) => liveChains(h.db, ids) });

  test("a chain with unsigned rows gets a signed checkpoint AUDIT_CHECKPOINT_SECONDS after its last one (controlled clock), anchored", async () => {
    const clock = testClock();
    const anchorPath = join(dir, `${h.kind}-time.jsonl`);
    const w = writerFor(h.db, key, {
      clock,
      checkpointEvery: 1000,
      checkpointSeconds: 10,
      tickMs: 0,
      anchors: new AnchorFile(anchorPath),
    });
    await w.record(sampleEvent(1));
    await w.record(sampleEvent(2));
    const id = w.stats().chainId!;
    clock.advance(9_999);
    await w.checkpointIfDue();
    expect((await chainRows(h.db, id)).map((r) => r.eventType)).toEqual([
      "AUDIT_CHECKPOINT",
      "ACCESS_GRANTED",
      "ACCESS_GRANTED",
    ]);
    clock.advance(1);
    await w.checkpointIfDue();
    const rows = await chainRows(h.db, id);
    expect(rows.map((r) => [r.seq, r.eventType, (r.details as { kind?: string }).kind ?? null])).toEqual([
      ["1", "AUDIT_CHECKPOINT", "open"],
      ["2", "ACCESS_GRANTED", null],
      ["3", "ACCESS_GRANTED", null],
      ["4", "AUDIT_CHECKPOINT", "periodic"],
    ]);
    // Nothing unsigned: no further checkpoint, however long it stays idle.
    clock.advance(60_000);
    await w.checkpointIfDue();
    expect(await chainRows(h.db, id)).toHaveLength(4);
    // The next timed checkpoint counts from the last one.
    await w.record(sampleEvent(3));
    clock.advance(10_000);
    await w.checkpointIfDue();
    expect(await chainRows(h.db, id)).toHaveLength(6);
    await w.close();
    await w.flush();
    const anchors = (await readAnchorFile(anchorPath)).entries;
    expect(anchors.map((a) => [a.seq, a.statement.kind])).toEqual([
      [1, "open"],
      [4, "periodic"],
      [6, "periodic"],
      [7, "close"],
    ]);
    expect(anchors.every((a) => a.chainId === id)).toBe(true);
    expect(await verifyAuditLog(h.db, { publicKeys: key.publicKeys, anchors })).toMatchObject({
      valid: true,
      anchorsChecked: 4,
    });
  });

  test("a live writer's chain is not sealed by another; once its writer is gone it is sealed with a recovery checkpoint naming its last row", async () => {
    const a = writerFor(h.db, key, { tickMs: 0 });
    const b = writerFor(h.db, key, { tickMs: 0 });
    await a.record(sampleEvent(1));
    await a.record(sampleEvent(2));
    await b.record(sampleEvent(3));
    const aChain = a.stats().chainId!;
    // Both alive: nothing to seal, and both unsigned tails are held.
    expect(await b.sealAbandonedChains()).toEqual([]);
    expect(await verify()).toMatchObject({ valid: true, unclosedChains: 2 });

    if (h.kind === "postgres") {
      // Another process's writer: its chain lock is a session advisory lock; kill that session (a crash).
      const admin = new pg.Client({ connectionString: (h.db as { url?: string }).url });
      admin.on("error", () => {});
      await admin.connect();
      const killed = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objid = ((hashtext($2)::bigint + 4294967296) % 4294967296)::oid AND granted`,
        [0x636b6101, aChain],
      );
      await admin.end();
      expect(killed.rowCount).toBe(1);
      for (let i = 0; i < 200 && !a.stats().chainLockLost; i++) await Bun.sleep(10); // the client learns of the kill asynchronously
      expect(a.stats().chainLockLost).toBe(true);
      // Without its lock the chain is abandoned: `a` writes nothing more to it (not even its closing checkpoint).
      await a.close();
    } else {
      // PGlite: a writer of this process is gone once closed without its closing checkpoint; emulate
      // a crash by dropping its registration (what a process exit does).
      (await import("../../src/audit/writer.ts")).forgetWriterForTests(h.db, aChain);
    }
    const unsealed = await verifyAuditLog(h.db, {
      publicKeys: key.publicKeys,
      liveChains: (ids) => liveChains(h.db, ids),
    });
    // Abandoned with unsigned rows: a finding until sealed (rows deleted from its tail could not be ruled out).
    expect(unsealed.findings.find((f) => f.chainId === aChain)?.kind).toBe("unsealed-tail");
    const lastRow = (await chainRows(h.db, aChain)).at(-1)!;
    expect(await b.sealAbandonedChains()).toEqual([aChain]);
    const rows = await chainRows(h.db, aChain);
    const recovery = rows.at(-1)!;
    expect(recovery.eventType).toBe("AUDIT_CHECKPOINT");
    expect(recovery.details).toMatchObject({
      kind: "recovery",
      chainId: aChain,
      seq: Number(lastRow.seq),
      headHash: lastRow.hash,
      lastRowId: lastRow.id,
    });
    expect(rows).toHaveLength(Number(lastRow.seq) + 1);
    // Sealed: a second sweep does nothing, and the log verifies with b's chain still live.
    expect(await b.sealAbandonedChains()).toEqual([]);
    expect(await verify()).toMatchObject({ valid: true });
    await b.close();
    if (h.kind === "pglite") await a.close().catch(() => {});
    expect(await verifyAuditLog(h.db, { publicKeys: key.publicKeys })).toMatchObject({ valid: true });
  });
});
