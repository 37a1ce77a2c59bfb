/**
 * The append-only trigger, and tampering by someone who gets past it (a superuser with the trigger
 * disabled): every kind of edit is reported by verifyAuditLog at the right row.
 */
import { beforeAll, beforeEach, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { canonicalJson } from "../../src/crypto/canonical-json.ts";
import { genesisHash, rowHash, CHECKPOINT_TYP } from "../../src/audit/chain.ts";
import { verifyAuditLog } from "../../src/audit/verify.ts";
import { asSuperuser, chainRows, sampleEvent, testKey, writerFor, type StoredRow, type TestKey } from "./helpers.ts";

describeEachDb("audit tamper evidence", (h) => {
  let key: TestKey;
  let rows: StoredRow[];
  const row = (seq: number) => rows[seq - 1]!;
  const verify = () => verifyAuditLog(h.db, { publicKeys: key.publicKeys, batchSize: 7 }); // small pages: exercises keyset paging

  beforeAll(async () => {
    key = await testKey();
  });

  // A fresh closed chain per test: open(1), events 2..11, checkpoint 12, events 13..22, checkpoint 23, events 24..28, close 29.
  beforeEach(async () => {
    await asSuperuser(h.db, `TRUNCATE "audit_logs"`);
    const w = writerFor(h.db, key, { checkpointEvery: 10 });
    for (let i = 0; i < 25; i++) await w.record(sampleEvent(i));
    await w.close();
    rows = await chainRows(h.db, w.stats().chainId!);
    expect(rows).toHaveLength(29);
  });

  test("UPDATE, DELETE and TRUNCATE are refused by the database", async () => {
    // Prisma's promises are lazy thenables; Promise.resolve turns them into real promises for expect().
    const attempt = (p: PromiseLike<unknown>) => expect(Promise.resolve(p)).rejects.toThrow(/append-only/);
    await attempt(h.db.prisma.$executeRawUnsafe(`UPDATE "audit_logs" SET "actor" = 'mallory'`));
    await attempt(h.db.prisma.$executeRawUnsafe(`DELETE FROM "audit_logs" WHERE "seq" = 5`));
    await attempt(h.db.prisma.$executeRawUnsafe(`TRUNCATE "audit_logs"`));
    await attempt(h.db.prisma.auditLog.updateMany({ data: { success: false } }));
    await attempt(h.db.prisma.auditLog.deleteMany({}));
    expect(await h.db.prisma.auditLog.count()).toBe(29);
    expect(await verify()).toMatchObject({ valid: true, checked: 29, chains: 1, checkpoints: 4, unclosedChains: 0 });
  });

  test("an updated row: hash mismatch at that row", async () => {
    await asSuperuser(h.db, `UPDATE "audit_logs" SET "details" = '{"i": 999}'::jsonb WHERE "id" = $1::uuid`, [row(5).id]);
    expect((await verify()).firstInvalid).toMatchObject({ seq: 5, id: row(5).id, chainId: row(5).chainId, reason: expect.stringContaining("hash does not match") });
    // success flipped on another row: same
    await asSuperuser(h.db, `UPDATE "audit_logs" SET "details" = $2::jsonb WHERE "id" = $1::uuid`, [row(5).id, canonicalJson(row(5).details)]);
    await asSuperuser(h.db, `UPDATE "audit_logs" SET "success" = NOT "success" WHERE "id" = $1::uuid`, [row(14).id]);
    expect((await verify()).firstInvalid).toMatchObject({ seq: 14, id: row(14).id });
  });

  test("a deleted row: the gap is reported at the row after it", async () => {
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "id" = $1::uuid`, [row(7).id]);
    expect((await verify()).firstInvalid).toMatchObject({ seq: 8, id: row(8).id, reason: "seq 7 is missing (row deleted?)" });
  });

  test("deleting the tail including the closing checkpoint leaves an unclosed chain whose signed part still verifies", async () => {
    // Truncating a chain after its last checkpoint is the one edit a hash chain alone cannot reveal;
    // verify says how much of the log is covered only by hashes.
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "chainId" = $1 AND "seq" > 23`, [row(1).chainId]);
    expect(await verify()).toMatchObject({ valid: true, unclosedChains: 1, unsignedTailRows: 0 });
  });

  test("an inserted row after the closing checkpoint, with correctly computed hashes", async () => {
    const last = row(29);
    const forged = { ...last, id: "0190a000-0000-7000-8000-0000000000aa", seq: "30", eventType: "ACCESS_GRANTED", actor: "mallory", target: "token:gmail:ceo", success: true, details: {} };
    const hash = rowHash(last.hash, forged);
    await insertRaw({ ...forged, prevHash: last.hash, hash });
    expect((await verify()).firstInvalid).toMatchObject({ seq: 30, id: forged.id, reason: expect.stringContaining("closing checkpoint") });
  });

  test("an inserted row with a made-up hash in the middle of a chain's seq range is a link mismatch", async () => {
    // Make room at seq 10 by deleting it, then insert a forged row there.
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "id" = $1::uuid`, [row(10).id]);
    const forged = { ...row(10), id: "0190a000-0000-7000-8000-0000000000bb", actor: "mallory" };
    await insertRaw({ ...forged, hash: rowHash(forged.prevHash, forged) });
    expect((await verify()).firstInvalid).toMatchObject({ seq: 11, id: row(11).id, reason: expect.stringContaining("prevHash") });
  });

  test("a forged chain never opened by a key holder: missing or badly signed opening checkpoint", async () => {
    const chainId = "00000000-forged-chain";
    let prev = genesisHash(chainId);
    const forged = { ...row(2), id: "0190a000-0000-7000-8000-0000000000cc", chainId, seq: "1", prevHash: prev };
    await insertRaw({ ...forged, hash: rowHash(prev, forged) });
    expect((await verify()).firstInvalid).toMatchObject({ seq: 1, id: forged.id, chainId, reason: expect.stringContaining("does not open with a signed checkpoint") });

    // With an opening checkpoint signed by a key that is not a master key:
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "chainId" = $1`, [chainId]);
    const mallory = await testKey(1);
    const statement = { chainId, seq: 0, headHash: prev, kind: "open" as const };
    const open = { ...row(1), id: "0190a000-0000-7000-8000-0000000000dd", chainId, seq: "1", prevHash: prev, details: { ...statement, signature: await mallory.signer(statement, CHECKPOINT_TYP) } };
    await insertRaw({ ...open, hash: (prev = rowHash(prev, open)) });
    expect((await verify()).firstInvalid).toMatchObject({ seq: 1, id: open.id, chainId, reason: expect.stringContaining("does not verify") });
  });

  test("a chain recomputed after an edit: hashes consistent, but the next checkpoint's signed head no longer matches", async () => {
    await recomputeFrom(5, (r) => ({ ...r, actor: "someone-else" }));
    const v = await verify();
    // Rows 5..11 now link correctly; the checkpoint at 12 signed the old head of seq 11.
    expect(v.firstInvalid).toMatchObject({ seq: 12, id: row(12).id, reason: expect.stringContaining("chain rewritten") });

    // Going further and rewriting the checkpoint's headHash too breaks its signature instead.
    await asSuperuser(h.db, `TRUNCATE "audit_logs"`);
    await insertAll(rows);
    await recomputeFrom(5, (r) => ({ ...r, actor: "someone-else" }), true);
    expect((await verify()).firstInvalid).toMatchObject({ seq: 12, id: row(12).id, reason: expect.stringContaining("different chain head") });
  });

  /** Rewrites rows from `seq` on with `edit` applied to that row, recomputing every later hash. */
  async function recomputeFrom(seq: number, edit: (r: StoredRow) => StoredRow, rewriteCheckpoints = false) {
    const out = rows.map((r) => ({ ...r }));
    out[seq - 1] = edit(out[seq - 1]!);
    for (let i = seq - 1; i < out.length; i++) {
      const r = out[i]!;
      r.prevHash = out[i - 1]!.hash;
      if (rewriteCheckpoints && r.eventType === "AUDIT_CHECKPOINT") r.details = { ...(r.details as object), headHash: r.prevHash };
      r.hash = rowHash(r.prevHash, r);
    }
    await asSuperuser(h.db, `TRUNCATE "audit_logs"`);
    await insertAll(out);
  }

  async function insertAll(list: StoredRow[]) {
    for (const r of list) await insertRaw(r);
  }

  async function insertRaw(r: StoredRow) {
    await asSuperuser(
      h.db,
      `INSERT INTO "audit_logs" ("id","seq","chainId","timestamp","eventType","actor","target","startTime","endTime","success","details","prevHash","hash")
       VALUES ($1::uuid,$2::bigint,$3,$4::bigint,$5,$6,$7,$8::bigint,$9::bigint,$10,$11::jsonb,$12,$13)`,
      [r.id, r.seq, r.chainId, r.timestamp, r.eventType, r.actor, r.target, r.startTime, r.endTime, r.success, canonicalJson(r.details), r.prevHash, r.hash],
    );
  }
});
