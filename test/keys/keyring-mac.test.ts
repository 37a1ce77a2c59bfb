/**
 * The keyring MAC (SPEC §4), from the side of someone with SQL access to master_keys: a row
 * inserted or edited there (an attacker's public key, a changed sliceSeconds) is refused at load,
 * the JWKS never serves a substituted key, and audit verification trusts no such row. Rows written
 * by the previous code (no MAC column value) are upgraded in place once, after proving their key pair.
 */
import { beforeEach, expect, test } from "bun:test";
import { generateMasterKeyPair, keyringMacKey, parseKek, wrapPrivateJwk } from "../../src/crypto/index.ts";
import { KekMismatchError, KeyringIntegrityError } from "../../src/errors.ts";
import { MasterKeyRepository, loadKeyring } from "../../src/keys/repository.ts";
import { describeEachDb } from "../support/databases.ts";
import { TEST_KEK } from "../support/app.ts";
import { OTHER_KEK, kekOf, keyService } from "./helpers.ts";
import { rewrapKek } from "../../src/keys/kek-rewrap.ts";

const macKey = keyringMacKey(parseKek(TEST_KEK));

describeEachDb("keyring MAC", (h) => {
  beforeEach(async () => {
    await h.db.prisma.masterKey.deleteMany();
  });

  /** A master_keys row exactly as the code before keyring MACs wrote it (no keyringMac, createdAt by the database). */
  async function oldStyleRow(version: number, status: string, opts: { publicOf?: number } = {}) {
    const pair = await generateMasterKeyPair({ kid: String(version) });
    const other = opts.publicOf === undefined ? pair : await generateMasterKeyPair();
    await h.db.prisma.$executeRawUnsafe(
      `INSERT INTO master_keys (id, version, "publicKeyJwk", "privateKeyJwe", "kekId", "sliceSeconds", status) VALUES (gen_random_uuid(), $1, $2::jsonb, $3, $4, 3600, $5)`,
      version,
      JSON.stringify({
        kty: "EC",
        crv: "P-256",
        x: other.publicJwk.x,
        y: other.publicJwk.y,
        kid: String(version),
        alg: "ES256",
        use: "sig",
      }),
      await wrapPrivateJwk(pair.privateJwk, parseKek(TEST_KEK), { version }),
      kekOf(TEST_KEK).kekId,
      status,
    );
    return pair;
  }

  test("rows written by the previous code (all statuses) are MAC'd at the first start, after their key pair is proven", async () => {
    await oldStyleRow(1, "retired");
    await oldStyleRow(2, "decrypt-only");
    await oldStyleRow(3, "active");
    const keys = await keyService(h.db);
    const rows = await new MasterKeyRepository(h.db, macKey).list();
    expect(rows.map((r) => [r.version, r.keyringMac !== null])).toEqual([
      [1, true],
      [2, true],
      [3, true],
    ]);
    expect(loadKeyring(rows, macKey).rejected).toEqual([]);
    expect((await keys.keyring()).publicKeys.size).toBe(3);
    keys.close();
    // A restart loads them as MAC'd rows.
    (await keyService(h.db)).close();
  });

  test("an old-style row whose public key is not its private key's is refused by the upgrade (nothing is MAC'd)", async () => {
    await oldStyleRow(1, "decrypt-only");
    await oldStyleRow(2, "active", { publicOf: 99 });
    await expect(keyService(h.db)).rejects.toBeInstanceOf(KeyringIntegrityError);
    expect(await h.db.prisma.masterKey.count({ where: { keyringMac: { not: null } } })).toBe(0);
  });

  test("after the upgrade, a row without a MAC is refused (an inserted retired row with the attacker's key)", async () => {
    (await keyService(h.db)).close();
    const mallory = await generateMasterKeyPair();
    await h.db.prisma.masterKey.create({
      data: {
        version: 7,
        publicKeyJwk: { ...mallory.publicJwk, kid: "7" } as object,
        privateKeyJwe: "a.b.c.d.e",
        kekId: kekOf(TEST_KEK).kekId,
        sliceSeconds: 3600,
        status: "retired",
      },
    });
    await expect(keyService(h.db)).rejects.toThrow(/version 7 has no keyring MAC/);
    const k = loadKeyring(await new MasterKeyRepository(h.db, macKey).list(), macKey);
    expect(k.rejected.map((r) => r.version)).toEqual([7]);
    expect(k.publicKeys.has("7")).toBe(false);
  });

  test("a substituted active public key is refused at load (MAC), so the JWKS never serves it; so is an edited sliceSeconds", async () => {
    const keys = await keyService(h.db);
    const served = await keys.jwks();
    keys.close();
    const mallory = await generateMasterKeyPair();
    await h.db.prisma.masterKey.update({
      where: { version: 1 },
      data: { publicKeyJwk: { ...mallory.publicJwk, kid: "1", alg: "ES256", use: "sig" } as object },
    });
    await expect(keyService(h.db)).rejects.toBeInstanceOf(KeyringIntegrityError);
    expect(
      loadKeyring(await new MasterKeyRepository(h.db, macKey).list(), macKey).rejected.map((r) => r.version),
    ).toEqual([1]);
    // Restored, it loads again and serves the real key.
    await h.db.prisma.masterKey.update({ where: { version: 1 }, data: { publicKeyJwk: served[0] as object } });
    const again = await keyService(h.db);
    expect(await again.jwks()).toEqual(served);
    again.close();
    await h.db.prisma.masterKey.update({ where: { version: 1 }, data: { sliceSeconds: 60 } });
    await expect(keyService(h.db)).rejects.toThrow(/fails its keyring MAC/);
  });

  test("legacyTokenEnvelopes turned back on in SQL (v1 envelopes are forgeable) fails the row's MAC; clearing it through the repository re-MACs", async () => {
    (await keyService(h.db)).close();
    await h.db.prisma.masterKey.update({ where: { version: 1 }, data: { legacyTokenEnvelopes: true } });
    await expect(keyService(h.db)).rejects.toThrow(/fails its keyring MAC/);
    // The legitimate one-way switch (true → false) keeps the row loadable.
    const repo = new MasterKeyRepository(h.db, macKey);
    await h.db.prisma.$transaction((tx) => repo.clearLegacyTokenEnvelopes(tx));
    expect(loadKeyring(await repo.list(), macKey).rejected).toEqual([]);
    (await keyService(h.db)).close();
  });

  test("a running service refuses a forged row at reload (keeps serving its keys, readiness fails)", async () => {
    const keys = await keyService(h.db, { refreshIntervalMs: 0 });
    const mallory = await generateMasterKeyPair();
    await h.db.prisma.masterKey.create({
      data: {
        version: 2,
        publicKeyJwk: { ...mallory.publicJwk, kid: "2" } as object,
        privateKeyJwe: "a.b.c.d.e",
        kekId: kekOf(TEST_KEK).kekId,
        sliceSeconds: 3600,
        status: "retired",
        keyringMac: "A".repeat(43),
      },
    });
    await keys.refresh();
    await expect(keys.health()).rejects.toThrow();
    expect((await keys.jwks()).map((j) => j.kid)).toEqual(["1"]);
    keys.close();
  });

  test("rotation MACs the new row; a KEK rewrap re-MACs every row under the new KEK (the old KEK's MACs no longer hold)", async () => {
    const keys = await keyService(h.db);
    await keys.rotate();
    keys.close();
    const r = await rewrapKek(h.db, kekOf(TEST_KEK), kekOf(OTHER_KEK));
    expect(r.rewrapped).toEqual([1, 2]);
    const otherMac = keyringMacKey(parseKek(OTHER_KEK));
    const rows = await new MasterKeyRepository(h.db, otherMac).list();
    expect(loadKeyring(rows, otherMac).rejected).toEqual([]);
    expect(loadKeyring(rows, macKey).rejected.map((x) => x.version)).toEqual([1, 2]);
    (await keyService(h.db, { kekHex: OTHER_KEK })).close();
    await expect(keyService(h.db)).rejects.toBeInstanceOf(KekMismatchError);
  });
});
