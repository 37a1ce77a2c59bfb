/** KEK rotation: every master private JWE moves from the previous KEK to the new one; reruns finish the job. */
import { expect, test } from "bun:test";
import { KekMismatchError } from "../../src/errors.ts";
import { rewrapKek } from "../../src/keys/kek-rewrap.ts";
import { TEST_KEK } from "../support/app.ts";
import { describeEachDb } from "../support/databases.ts";
import { OTHER_KEK, kekOf, keyService, seedTokens, verifyTokens } from "./helpers.ts";

const THIRD_KEK = "5c0ffee1d2b3a4958677e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d"; // not one repeated byte: weak KEKs are refused

describeEachDb("keys:rewrap-kek", (h) => {
  test("rewraps every version (all statuses); the new KEK then loads the same keys, the old one is refused; a rerun changes nothing", async () => {
    const keys = await keyService(h.db);
    await seedTokens(h.db, keys, 10);
    await keys.rotate();
    const jwks = await keys.jwks();
    keys.close();

    await expect(rewrapKek(h.db, kekOf(THIRD_KEK), kekOf(OTHER_KEK))).rejects.toBeInstanceOf(KekMismatchError);
    const r = await rewrapKek(h.db, kekOf(TEST_KEK), kekOf(OTHER_KEK));
    expect(r).toEqual({ rewrapped: [1, 2], alreadyCurrent: [] });
    for (const row of await h.db.prisma.masterKey.findMany()) expect(row.kekId).toBe(kekOf(OTHER_KEK).kekId);

    const after = await keyService(h.db, { kekHex: OTHER_KEK });
    expect(await after.jwks()).toEqual(jwks);
    expect((await verifyTokens(h.db, after)).failures).toEqual([]);
    after.close();
    await expect(keyService(h.db)).rejects.toBeInstanceOf(KekMismatchError);

    expect(await rewrapKek(h.db, kekOf(TEST_KEK), kekOf(OTHER_KEK))).toEqual({ rewrapped: [], alreadyCurrent: [1, 2] });
  }, 20_000);
});
