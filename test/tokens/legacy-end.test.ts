/**
 * v1 token-envelope acceptance ends (security review of #10), on both databases: once a rewrap run
 * finds no v1 value left, `legacyTokenEnvelopes` is cleared, and a v1 value written back from a
 * backup afterwards is refused by reads (422 + DECRYPT_FAILED) and NOT laundered by rewrap into a
 * valid v2 envelope (skipped + audited DECRYPT_FAILED).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { keyringMac, keyringMacKey, parseKek } from "../../src/crypto/index.ts";
import { runRewrap } from "../../src/keys/rewrap.ts";
import { TEST_KEK } from "../support/app.ts";
import { legacyTokenContext } from "../../src/tokens/record.ts";
import { describeEachDb } from "../support/databases.ts";
import { auditRows, tokenTestApp, type TokenTestApp } from "./helpers.ts";

describeEachDb("v1 token envelopes: acceptance ends after the last one is re-sealed", (h) => {
  let a: TokenTestApp;
  beforeAll(async () => {
    a = await tokenTestApp(h.db);
  }, 60_000);
  afterAll(() => a?.close());

  const get = (u: string) => a.call(a.reader, "GET", `/v1/tokens/gmail/${u}?refresh=never`);
  /**
   * Marks version v as one that predates key separation, as the migration does for every pre-v2
   * version. The flag is under the keyring MAC, so this is done as chronokms would have: with the KEK.
   */
  const markLegacy = async (v: number) => {
    const r = await h.db.prisma.masterKey.findUniqueOrThrow({ where: { version: v } });
    const mac = keyringMac(keyringMacKey(parseKek(TEST_KEK)), {
      version: v,
      publicJwk: r.publicKeyJwk as never,
      sliceSeconds: r.sliceSeconds,
      createdAt: r.createdAt,
      legacyTokenEnvelopes: true,
    });
    await h.db.prisma.masterKey.update({
      where: { version: v },
      data: { legacyTokenEnvelopes: true, keyringMac: mac },
    });
  };
  const flag = async (v: number) =>
    (await h.db.prisma.masterKey.findUniqueOrThrow({ where: { version: v } })).legacyTokenEnvelopes;

  test("a v1 value from a backup, written back after the last rewrap, is refused and not re-sealed", async () => {
    expect((await a.call(a.writer, "PUT", "/v1/tokens/gmail/old-user", { accessToken: "current" })).status).toBe(201);
    const keys = a.t.runtime.keys;
    const v = (await keys.active()).version;
    // This version predates key separation (as the migration marks every pre-v2 version) and the
    // row still holds a v1 value: ECDH-ES to a slice key under v1's ctx, as v1 sealed it.
    await markLegacy(v);
    await keys.refresh();
    const v1 = (await keys.seal("from-v1", { ctx: legacyTokenContext("gmail", "old-user", "access"), ts: Date.now() }))
      .jwe;
    const writeBack = () =>
      h.db.prisma.$executeRawUnsafe(
        `UPDATE oauth_tokens SET "accessToken" = $1, "refreshToken" = NULL, "keyVersion" = $2 WHERE "userId" = 'old-user'`,
        v1,
        v,
      );
    await writeBack();
    const before = await get("old-user");
    expect(before.status).toBe(200);
    expect(((await before.json()) as { accessToken: string }).accessToken).toBe("from-v1");

    // The upgrade's rewrap re-seals it and, finding no v1 value left, ends v1 acceptance.
    const first = await runRewrap(keys, keys.rewrappables());
    expect(first.failed).toEqual([]);
    expect(await flag(v)).toBe(false);
    expect((await get("old-user")).status).toBe(200);

    // The attacker restores the v1 ciphertext from a backup.
    await writeBack();
    const res = await get("old-user");
    expect(res.status).toBe(422);
    expect(JSON.stringify(await res.json())).not.toContain("from-v1");
    const second = await runRewrap(keys, keys.rewrappables());
    expect(second.failed.map((f) => f.label)).toEqual(["token:gmail:old-user"]);
    const row = await h.db.prisma.oAuthToken.findFirstOrThrow({ where: { userId: "old-user" } });
    expect(row.accessToken).toBe(v1); // left alone, not laundered into a v2 envelope
    const failures = (await auditRows(h.db, "DECRYPT_FAILED")).filter((r) => r.target === "token:gmail:old-user");
    expect(failures.some((r) => r.actor === "system:rewrap")).toBe(true);
    expect(failures.some((r) => r.actor !== "system:rewrap")).toBe(true);
  }, 30_000);

  test("a v1 value that does not open keeps the flag set (acceptance ends only when none is left)", async () => {
    const keys = a.t.runtime.keys;
    await keys.rotate();
    const v = (await keys.active()).version;
    await markLegacy(v);
    await keys.refresh();
    expect((await a.call(a.writer, "PUT", "/v1/tokens/gmail/damaged", { accessToken: "x" })).status).toBe(201);
    const bad = (await keys.seal("y", { ctx: legacyTokenContext("gmail", "someone-else", "access"), ts: Date.now() }))
      .jwe;
    await h.db.prisma.$executeRawUnsafe(
      `UPDATE oauth_tokens SET "accessToken" = $1, "refreshToken" = NULL, "keyVersion" = $2 WHERE "userId" = 'damaged'`,
      bad,
      v,
    );
    await runRewrap(keys, keys.rewrappables());
    expect(await flag(v)).toBe(true);
    await h.db.prisma.oAuthToken.deleteMany({ where: { userId: { in: ["damaged", "old-user"] } } });
    await runRewrap(keys, keys.rewrappables());
    expect(await flag(v)).toBe(false);
  }, 30_000);
});
