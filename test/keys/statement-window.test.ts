/**
 * An anonymous client sweeping the public slice route: a decrypt-only version is signed only for
 * slices of its own active period, the statements around now survive any sweep, and a global cap
 * bounds uncached signatures however many addresses the sweep comes from.
 */
import { expect, test } from "bun:test";
import { ValidationError, RateLimitedError } from "../../src/errors.ts";
import { sliceIndex } from "../../src/crypto/index.ts";
import {
  UncachedLookupLimiter,
  UNCACHED_LOOKUPS_GLOBAL_BURST,
  statementWindow,
} from "../../src/keys/slice-statements.ts";
import { describeEachDb } from "../support/databases.ts";
import { keyService } from "./helpers.ts";

const HOUR = 3600_000;

describeEachDb("slice statements of a decrypt-only version", (h) => {
  test("are signed only for ended slices of its active period; the warm statements survive a full sweep", async () => {
    let now = Date.now();
    const keys = await keyService(h.db, { clock: { now: () => now }, sliceSeconds: 60 });
    try {
      const v1 = (await keys.active()).version;
      now += 6 * HOUR;
      const rotatedAt = now;
      await keys.rotate();
      now += 3 * HOUR;
      const before = sliceIndex(rotatedAt - HOUR, 60);
      expect((await keys.signedSliceKey(before, v1)).status).toBe("decrypt-only");
      // After v1 stopped being active: nothing of v1 was ever encrypted there.
      const after = sliceIndex(rotatedAt + HOUR, 60);
      await expect(keys.signedSliceKey(after, v1)).rejects.toBeInstanceOf(ValidationError);
      await expect(keys.signedSliceKey(after, v1)).rejects.toThrow(/active period/);

      // Sweep every slice either version will sign now; the statement of now is never re-signed.
      const current = await keys.signedSliceKey("current");
      const versions = await keys.versions();
      for (const v of versions) {
        const w = statementWindow(v.status as "active" | "decrypt-only", 60, now, {
          createdAt: Date.parse(v.createdAt),
          rotatedAt: v.rotatedAt ? Date.parse(v.rotatedAt) : null,
        });
        if (!w) continue;
        for (let s = w.from; s <= w.to; s++) await keys.signedSliceKey(s, v.version);
      }
      expect((await keys.signedSliceKey("current")).signature).toBe(current.signature);
    } finally {
      keys.close();
    }
  }, 60_000);
});

test("a sweep from many addresses is capped globally, not just per address", () => {
  const limiter = new UncachedLookupLimiter(() => 0);
  let allowed = 0;
  for (let i = 0; i < UNCACHED_LOOKUPS_GLOBAL_BURST + 50; i++) {
    try {
      limiter.take(`10.0.${i >> 8}.${i & 255}`);
      allowed++;
    } catch (e) {
      expect(e).toBeInstanceOf(RateLimitedError);
    }
  }
  expect(allowed).toBe(UNCACHED_LOOKUPS_GLOBAL_BURST);
});
