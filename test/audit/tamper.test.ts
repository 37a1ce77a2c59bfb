/**
 * The tamper suite (SPEC §6 completeness), from the attacker's side: a superuser with the
 * append-only trigger out of the way (PostgreSQL: session_replication_role = replica; PGlite: the
 * trigger disabled) edits, deletes, truncates, inserts, recomputes and re-signs, or plants key rows.
 * Every case runs on a fresh copy of a closed chain whose signed checkpoints are in the anchor log,
 * on both databases, and must be detected naming its kind.
 */
import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeEachDb } from "../support/databases.ts";
import { canonicalJson } from "../../src/crypto/canonical-json.ts";
import { keyringMac } from "../../src/crypto/index.ts";
import { genesisHash, rowHash, CHECKPOINT_TYP } from "../../src/audit/chain.ts";
import { verifyAuditLog, type FindingKind } from "../../src/audit/verify.ts";
import { AnchorFile, readAnchorFile } from "../../src/audit/anchors.ts";
import { liveChains } from "../../src/audit/writer.ts";
import {
  asSuperuser,
  chainRows,
  sampleEvent,
  storeMasterKey,
  testKey,
  testMacKey,
  trustedKeys,
  writerFor,
  type StoredRow,
  type TestKey,
} from "./helpers.ts";

describeEachDb("audit tamper suite", (h) => {
  let key: TestKey;
  let mallory: TestKey;
  let rows: StoredRow[];
  let dir: string;
  let anchorPath: string;
  const row = (seq: number) => rows[seq - 1]!;
  const chainId = () => row(1).chainId;

  /** What `audit:verify --anchors` and the API do: trusted keys, anchors, live writers. Small pages exercise keyset paging. */
  async function verify() {
    const anchors = await readAnchorFile(anchorPath);
    return verifyAuditLog(h.db, {
      ...(await trustedKeys(h.db)),
      anchors: anchors.entries,
      malformedAnchorLines: anchors.malformed,
      liveChains: (ids) => liveChains(h.db, ids),
      batchSize: 7,
    });
  }
  async function kinds() {
    return (await verify()).findings.map((f) => f.kind);
  }
  async function expectDetected(kind: FindingKind, at?: { seq?: number }) {
    const v = await verify();
    expect(v.valid).toBe(false);
    expect(v.findings.map((f) => f.kind)).toContain(kind);
    if (at?.seq !== undefined) expect(v.findings.find((f) => f.kind === kind)).toMatchObject({ seq: at.seq });
    return v;
  }

  beforeAll(async () => {
    key = await testKey();
    mallory = await testKey(2);
    dir = mkdtempSync(join(tmpdir(), "chronokms-anchors-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // A fresh closed chain per test: open(1), events 2..11, checkpoint 12, events 13..22, checkpoint 23,
  // events 24..28, close 29; its 4 signed checkpoints are in a fresh anchor log; key 1 is a MAC'd row.
  beforeEach(async () => {
    await asSuperuser(h.db, `TRUNCATE "audit_logs"`);
    await h.db.prisma.masterKey.deleteMany();
    await storeMasterKey(h.db, key);
    anchorPath = join(dir, `${h.kind}-${Bun.randomUUIDv7()}.jsonl`);
    const w = writerFor(h.db, key, { checkpointEvery: 10, anchors: new AnchorFile(anchorPath) });
    for (let i = 0; i < 25; i++) await w.record(sampleEvent(i));
    await w.close();
    rows = await chainRows(h.db, w.stats().chainId ?? (await h.db.prisma.auditLog.findFirstOrThrow()).chainId);
    expect(rows).toHaveLength(29);
    expect((await readAnchorFile(anchorPath)).entries.map((a) => a.seq)).toEqual([1, 12, 23, 29]);
  });

  test("intact: valid, no findings; and the database itself refuses UPDATE, DELETE and TRUNCATE", async () => {
    expect(await verify()).toMatchObject({
      valid: true,
      findings: [],
      checked: 29,
      chains: 1,
      checkpoints: 4,
      unclosedChains: 0,
      anchorsChecked: 4,
    });
    // Prisma's promises are lazy thenables; Promise.resolve turns them into real promises for expect().
    const attempt = (p: PromiseLike<unknown>) => expect(Promise.resolve(p)).rejects.toThrow(/append-only/);
    await attempt(h.db.prisma.$executeRawUnsafe(`UPDATE "audit_logs" SET "actor" = 'mallory'`));
    await attempt(h.db.prisma.$executeRawUnsafe(`DELETE FROM "audit_logs" WHERE "seq" = 5`));
    await attempt(h.db.prisma.$executeRawUnsafe(`TRUNCATE "audit_logs"`));
    expect(await h.db.prisma.auditLog.count()).toBe(29);
  });

  test("row edit → row-edited at that row (one finding per edit)", async () => {
    await asSuperuser(h.db, `UPDATE "audit_logs" SET "details" = '{"i": 999}'::jsonb WHERE "id" = $1::uuid`, [
      row(5).id,
    ]);
    await asSuperuser(h.db, `UPDATE "audit_logs" SET "success" = NOT "success" WHERE "id" = $1::uuid`, [row(14).id]);
    const v = await expectDetected("row-edited", { seq: 5 });
    expect(v.firstInvalid).toMatchObject({ seq: 5, id: row(5).id, chainId: chainId() });
    expect(v.findings.map((f) => [f.kind, f.seq])).toEqual([
      ["row-edited", 5],
      ["row-edited", 14],
    ]);
  });

  test("row delete, middle → row-missing", async () => {
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "id" = $1::uuid`, [row(7).id]);
    const v = await expectDetected("row-missing", { seq: 8 });
    expect(v.findings[0]?.reason).toContain("seq 7 missing");
  });

  test("row delete, tail (the rows after the last periodic checkpoint, with the closing one) → anchor-missing", async () => {
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "chainId" = $1 AND "seq" > 23`, [chainId()]);
    await expectDetected("anchor-missing", { seq: 29 });
  });

  test("row delete, first (the opening checkpoint) → row-missing", async () => {
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "id" = $1::uuid`, [row(1).id]);
    const v = await expectDetected("row-missing", { seq: 2 });
    expect(v.findings[0]?.reason).toContain("starts at seq 2");
  });

  test("checkpoint delete: a periodic one → row-missing; the closing one and the rows before it → anchor-missing", async () => {
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "id" = $1::uuid`, [row(12).id]);
    await expectDetected("row-missing", { seq: 13 });
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "chainId" = $1 AND "seq" >= 13`, [chainId()]);
    expect(await kinds()).toContain("anchor-missing");
  });

  test("whole-chain delete → chain-missing", async () => {
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "chainId" = $1`, [chainId()]);
    const v = await expectDetected("chain-missing");
    expect(v.findings).toEqual([expect.objectContaining({ kind: "chain-missing", chainId: chainId() })]);
  });

  test("truncate → chain-missing", async () => {
    await asSuperuser(h.db, `TRUNCATE "audit_logs"`);
    await expectDetected("chain-missing");
  });

  test("insert after the closing checkpoint, hashes computed correctly → row-inserted", async () => {
    const last = row(29);
    const forged = {
      ...last,
      id: "0190a000-0000-7000-8000-0000000000aa",
      seq: "30",
      eventType: "ACCESS_GRANTED",
      actor: "mallory",
      target: "token:gmail:ceo",
      success: true,
      details: {},
    };
    await insertRaw({ ...forged, prevHash: last.hash, hash: rowHash(last.hash, forged) });
    await expectDetected("row-inserted", { seq: 30 });
  });

  test("insert into the middle (a deleted row replaced) → link-broken; a forged chain → forged-chain / untrusted-key", async () => {
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "id" = $1::uuid`, [row(10).id]);
    const forged = { ...row(10), id: "0190a000-0000-7000-8000-0000000000bb", actor: "mallory" };
    await insertRaw({ ...forged, hash: rowHash(forged.prevHash, forged) });
    await expectDetected("link-broken", { seq: 11 });

    const fake = "00000000-forged-chain";
    const prev = genesisHash(fake);
    const plain = { ...row(2), id: "0190a000-0000-7000-8000-0000000000cc", chainId: fake, seq: "1", prevHash: prev };
    await insertRaw({ ...plain, hash: rowHash(prev, plain) });
    await expectDetected("forged-chain");
    await asSuperuser(h.db, `DELETE FROM "audit_logs" WHERE "chainId" = $1`, [fake]);
    const statement = { chainId: fake, seq: 0, headHash: prev, kind: "open" as const };
    const open = {
      ...row(1),
      id: "0190a000-0000-7000-8000-0000000000dd",
      chainId: fake,
      seq: "1",
      prevHash: prev,
      details: { ...statement, signature: await mallory.signer(statement, CHECKPOINT_TYP) },
    };
    await insertRaw({ ...open, hash: rowHash(prev, open) });
    await expectDetected("untrusted-key", { seq: 1 });
  });

  test("recomputed tail: an edited row with every later hash recomputed → chain-rewritten and anchor-mismatch", async () => {
    await rewrite((out) => {
      out[24]!.actor = "someone-else"; // seq 25, after the last periodic checkpoint
      recompute(out, 25, false);
    });
    const v = await expectDetected("chain-rewritten", { seq: 29 });
    expect(v.findings.map((f) => f.kind)).toContain("anchor-mismatch");
    // Going further, the closing checkpoint's statement rewritten too: its signature no longer covers it.
    await rewrite((out) => {
      out[24]!.actor = "someone-else";
      recompute(out, 25, true);
    });
    const again = await expectDetected("chain-rewritten", { seq: 29 });
    expect(again.findings.find((f) => f.kind === "chain-rewritten")?.reason).toContain("different chain head");
  });

  test("forged key row + re-signed chain: a retired master_keys row with the attacker's key → key-row and untrusted-key", async () => {
    // The attacker cannot compute a keyring MAC (no KEK): a made-up one, or none.
    await h.db.prisma.masterKey.create({
      data: {
        version: 2,
        publicKeyJwk: mallory.pair.publicJwk as object,
        privateKeyJwe: "x.y.z.w.v",
        kekId: "test",
        sliceSeconds: 3600,
        status: "retired",
        keyringMac: "A".repeat(43),
      },
    });
    await rewrite((out) => {
      out[4]!.actor = "someone-else";
      recompute(out, 5, true, mallory);
    });
    const v = await expectDetected("key-row");
    expect(v.findings.map((f) => f.kind)).toContain("untrusted-key");
    expect(v.findings.find((f) => f.kind === "key-row")?.reason).toContain("version 2");
    // The anchored heads no longer match either.
    expect(v.findings.map((f) => f.kind)).toContain("anchor-mismatch");
  });

  test("substituted active public key (the attacker's key in row 1, chain re-signed by the attacker) → key-row and untrusted-key", async () => {
    await asSuperuser(h.db, `UPDATE "master_keys" SET "publicKeyJwk" = $1::jsonb WHERE "version" = 1`, [
      JSON.stringify({ ...mallory.pair.publicJwk, kid: "1" }),
    ]);
    const m1: TestKey = {
      ...mallory,
      signer: (p, typ) => mallory.signer(p, typ).then(() => signAs(mallory, "1", p, typ)),
    };
    await rewrite((out) => {
      out[4]!.actor = "someone-else";
      recompute(out, 1, true, m1);
    });
    const v = await expectDetected("key-row");
    expect(v.findings.map((f) => f.kind)).toContain("untrusted-key");
    // A key row with a valid MAC for another public key cannot be made without the KEK:
    expect(
      keyringMac(testMacKey, {
        version: 1,
        publicJwk: mallory.pair.publicJwk,
        sliceSeconds: 3600,
        createdAt: new Date(Date.UTC(2026, 10, 23)),
      }),
    ).not.toBe((await h.db.prisma.masterKey.findUniqueOrThrow({ where: { version: 1 } })).keyringMac);
  });

  // ---- helpers ---------------------------------------------------------------------------------

  async function signAs(k: TestKey, kid: string, payload: unknown, typ: string) {
    const { signPayload } = await import("../../src/crypto/sign.ts");
    return signPayload(payload, k.pair.privateJwk, { kid, typ });
  }

  /** Recomputes hashes from `seq` on; with `resign`, rewrites and (with `signer`) re-signs checkpoint statements. */
  function recompute(out: StoredRow[], seq: number, resign: boolean, signer?: TestKey) {
    for (let i = seq - 1; i < out.length; i++) {
      const r = out[i]!;
      r.prevHash = i === 0 ? genesisHash(r.chainId) : out[i - 1]!.hash;
      if (resign && r.eventType === "AUDIT_CHECKPOINT") {
        const d = r.details as Record<string, unknown>;
        r.details = { ...d, headHash: r.prevHash };
        if (signer)
          pendingSignatures.push({
            row: r,
            statement: { chainId: r.chainId, seq: Number(r.seq) - 1, headHash: r.prevHash, kind: d.kind },
          });
      }
      r.hash = rowHash(r.prevHash, r);
    }
    pendingSigner = signer;
  }
  let pendingSignatures: Array<{ row: StoredRow; statement: Record<string, unknown> }> = [];
  let pendingSigner = undefined as TestKey | undefined;

  async function rewrite(edit: (out: StoredRow[]) => void) {
    const out = rows.map((r) => ({ ...r, details: structuredClone(r.details) }));
    pendingSignatures = [];
    pendingSigner = undefined;
    edit(out);
    const resigner = pendingSigner as TestKey | undefined;
    if (resigner) {
      // Signatures change the checkpoint rows' details, so recompute in order with the real signatures.
      for (let i = 0; i < out.length; i++) {
        const r = out[i]!;
        r.prevHash = i === 0 ? genesisHash(r.chainId) : out[i - 1]!.hash;
        const p = pendingSignatures.find((x) => x.row === r);
        if (p) {
          const statement = { ...(p.statement as object), headHash: r.prevHash };
          r.details = { ...statement, signature: await resigner.signer(statement as never, CHECKPOINT_TYP) };
        }
        r.hash = rowHash(r.prevHash, r);
      }
    }
    await asSuperuser(h.db, `TRUNCATE "audit_logs"`);
    for (const r of out) await insertRaw(r);
  }

  async function insertRaw(r: StoredRow) {
    await asSuperuser(
      h.db,
      `INSERT INTO "audit_logs" ("id","seq","chainId","timestamp","eventType","actor","target","startTime","endTime","success","details","prevHash","hash")
       VALUES ($1::uuid,$2::bigint,$3,$4::bigint,$5,$6,$7,$8::bigint,$9::bigint,$10,$11::jsonb,$12,$13)`,
      [
        r.id,
        r.seq,
        r.chainId,
        r.timestamp,
        r.eventType,
        r.actor,
        r.target,
        r.startTime,
        r.endTime,
        r.success,
        canonicalJson(r.details),
        r.prevHash,
        r.hash,
      ],
    );
  }
});
