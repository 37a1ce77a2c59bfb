/**
 * Tampering with a token row's bookkeeping columns in SQL (security review of #10), on both
 * databases, from the attacker's side: a bad `version` or a `keyVersion` that does not match the
 * envelopes is a decryption failure (422 + DECRYPT_FAILED), never a 400 or a stalled rewrap, and a
 * forged `keyVersion` cannot hide a row from rewrap or from the retire check; list cursors never
 * name a row the caller was not admitted to.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { runRewrap } from "../../src/keys/rewrap.ts";
import { describeEachDb } from "../support/databases.ts";
import { auditRows, tokenTestApp, type TokenTestApp } from "./helpers.ts";

describeEachDb("token row tampering (bookkeeping columns)", (h) => {
  let a: TokenTestApp;
  beforeAll(async () => {
    a = await tokenTestApp(h.db);
  }, 60_000);
  afterAll(() => a?.close());

  const put = (u: string, body: unknown, i = "gmail") => a.call(a.writer, "PUT", `/v1/tokens/${i}/${u}`, body);
  const get = (u: string, i = "gmail") => a.call(a.reader, "GET", `/v1/tokens/${i}/${u}?refresh=never`);
  const sql = (q: string) => h.db.prisma.$executeRawUnsafe(q);
  const decryptFailures = async (u: string) =>
    (await auditRows(h.db, "DECRYPT_FAILED")).filter((r) => r.target === `token:gmail:${u}`).length;
  const rewrap = () => runRewrap(a.t.runtime.keys, a.t.runtime.keys.rewrappables(), { batchSize: 2 });

  test("version = 0 (or negative) in SQL: GET is 422 DECRYPTION_FAILED with a DECRYPT_FAILED row, not 400", async () => {
    for (const [u, v] of [
      ["bad-v0", 0],
      ["bad-vneg", -3],
    ] as const) {
      expect((await put(u, { accessToken: `acc-${u}`, refreshToken: `ref-${u}` })).status).toBe(201);
      await sql(`UPDATE oauth_tokens SET version = ${v} WHERE "userId" = '${u}'`);
      const res = await get(u);
      const body = (await res.json()) as { error: { code: string } };
      expect(res.status).toBe(422);
      expect(body.error.code).toBe("DECRYPTION_FAILED");
      expect(JSON.stringify(body)).not.toContain(`acc-${u}`);
      expect(await decryptFailures(u)).toBe(1);
    }
    const exp = await a.call(a.exporter, "GET", "/v1/tokens/gmail/bad-v0/export");
    expect(exp.status).toBe(422);
  });

  test("rewrap skips a row with a bad version (marked failed, audited) and moves every other row", async () => {
    for (const u of ["rw-a", "rw-b", "rw-c", "rw-d", "rw-e"])
      expect((await put(u, { accessToken: `acc-${u}` })).status).toBe(201);
    await sql(`UPDATE oauth_tokens SET version = 0 WHERE "userId" = 'rw-b'`);
    await a.t.runtime.keys.rotate();
    const active = (await a.t.runtime.keys.active()).version;
    const r = await rewrap();
    const failedIds = r.failed.map((f) => f.label);
    expect(failedIds).toContain("token:gmail:rw-b");
    const rows = await h.db.prisma.oAuthToken.findMany({ where: { userId: { in: ["rw-a", "rw-c", "rw-d", "rw-e"] } } });
    expect(rows).toHaveLength(4);
    expect(rows.every((row) => row.keyVersion === active)).toBe(true);
    expect(
      (await auditRows(h.db, "DECRYPT_FAILED")).some(
        (x) => x.target === "token:gmail:rw-b" && x.actor === "system:rewrap",
      ),
    ).toBe(true);
    for (const u of ["rw-a", "rw-e"]) expect((await get(u)).status).toBe(200);
  }, 30_000);

  test("keyVersion set to another version in SQL: the read is refused (422 + DECRYPT_FAILED); rewrap still moves the row; retire is not fooled", async () => {
    expect((await put("kv-lie", { accessToken: "acc-kv-lie", refreshToken: "ref-kv-lie" })).status).toBe(201);
    const old = (await h.db.prisma.oAuthToken.findFirstOrThrow({ where: { userId: "kv-lie" } })).keyVersion;
    await a.t.runtime.keys.rotate();
    const active = (await a.t.runtime.keys.active()).version;
    // Move every other row first, so only the lying row keeps `old` alive.
    await rewrap();
    expect((await put("kv-lie", { accessToken: "acc-kv-lie", refreshToken: "ref-kv-lie" })).status).toBe(200);
    // The row now is on `active`; restore an old-version ciphertext pair consistent with `old`? Simpler:
    // store it before a second rotation, then claim it is already on the newest version.
    await a.t.runtime.keys.rotate();
    const newest = (await a.t.runtime.keys.active()).version;
    expect(newest).toBeGreaterThan(active);
    await sql(`UPDATE oauth_tokens SET "keyVersion" = ${newest} WHERE "userId" = 'kv-lie'`);
    const before = await decryptFailures("kv-lie");
    const res = await get("kv-lie");
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("DECRYPTION_FAILED");
    expect(await decryptFailures("kv-lie")).toBe(before + 1);
    // Retiring `active` (which still protects the row's envelopes) is refused until rewrap moved it.
    const counts = await a.t.runtime.keys
      .rewrappables()
      .find((s) => s.name === "oauth_tokens")!
      .countByVersion();
    expect(counts.get(active) ?? 0).toBeGreaterThan(0);
    await expect(a.t.runtime.keys.retire(active)).rejects.toThrow(/still protects/);
    const r = await rewrap();
    expect(r.failed.map((f) => f.label)).not.toContain("token:gmail:kv-lie");
    const row = await h.db.prisma.oAuthToken.findFirstOrThrow({ where: { userId: "kv-lie" } });
    expect(row.keyVersion).toBe(newest);
    expect((await get("kv-lie")).status).toBe(200);
    expect(old).toBeLessThan(active);
    // Honest rows are recognised as consistent: nothing left to move, nothing counted twice.
    expect((await rewrap()).moved).toBe(0);
    const after = await a.t.runtime.keys
      .rewrappables()
      .find((s) => s.name === "oauth_tokens")!
      .countByVersion();
    const total = await h.db.prisma.oAuthToken.count();
    expect([...after.values()].reduce((x, y) => x + y, 0)).toBe(total);
  }, 30_000);
});
