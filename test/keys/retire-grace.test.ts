/**
 * Retirement waits until no valid (or cached) slice statement of the version can still be in a data
 * source's hands: otherwise data a source encrypts to version N after the rotation loses its grants.
 */
import { expect, test } from "bun:test";
import { ConflictError } from "../../src/errors.ts";
import { RETIRE_GRACE_MS, STATEMENT_CACHE_MAX_AGE_S } from "../../src/keys/slice-statements.ts";
import { SLICE_STATEMENT_TTL_MS, sliceIndex } from "../../src/crypto/index.ts";
import { describeEachDb } from "../support/databases.ts";
import { keyService } from "./helpers.ts";

describeEachDb("retiring a version right after its rotation", (h) => {
  test("is refused until statement lifetime + cache max-age have passed, naming when it becomes possible", async () => {
    expect(RETIRE_GRACE_MS).toBe(SLICE_STATEMENT_TTL_MS + STATEMENT_CACHE_MAX_AGE_S * 1000);
    let now = Date.now();
    const keys = await keyService(h.db, { clock: { now: () => now }, refreshIntervalMs: 10 });
    try {
      const old = (await keys.active()).version;
      // A data source fetched an active statement of the old version just before the rotation.
      const st = await keys.signedSliceKey(sliceIndex(now, 3600), old);
      expect(st.status).toBe("active");
      await keys.rotate();
      const rotatedAt = now;
      now += RETIRE_GRACE_MS - 1000; // the statement (or a cached copy) may still be in use
      const err = await keys.retire(old).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as Error).message).toContain(new Date(rotatedAt + RETIRE_GRACE_MS).toISOString());
      expect((await keys.get(old)).status).toBe("decrypt-only");
      now += 1000;
      expect(await keys.retire(old)).toEqual({ version: old, alreadyRetired: false });
    } finally {
      keys.close();
    }
  }, 30_000);
});
