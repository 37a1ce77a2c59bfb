/**
 * KeyService.resealMany (rotation's batch open + seal), on the calling thread and on worker threads:
 * same ts and ctx, the active version, and null (never a wrong value) for anything that must not open.
 */
import { expect, test } from "bun:test";
import { readEnvelopeHeader } from "../../src/crypto/index.ts";
import { ResealPool } from "../../src/keys/reseal-pool.ts";
import { createKeyService } from "../../src/keys/service.ts";
import { oauthTokenRewrappable, tokenCtx } from "../../src/tokens/rewrap.ts";
import { describeEachDb } from "../support/databases.ts";
import { agePastRetireGrace, kekOf, quietLog } from "./helpers.ts";
import { TEST_KEK } from "../support/app.ts";

const T = Date.UTC(2026, 2, 1, 10);

describeEachDb("KeyService.resealMany", (h) => {
  for (const workers of [0, 2]) {
    test(`${workers === 0 ? "on this thread" : "on 2 worker threads"}: re-seals to the active version keeping ts and ctx; wrong ctx, damaged or retired → null`, async () => {
      await h.db.prisma.oAuthToken.deleteMany({});
      const keys = await createKeyService({ db: h.db, ...kekOf(TEST_KEK), sliceSeconds: 3600, log: quietLog, rewrappables: [oauthTokenRewrappable(h.db)], resealWorkers: workers });
      try {
        const items = [];
        for (let i = 0; i < 300; i++) {
          const ctx = tokenCtx("gmail", `u${i}`, i % 2 ? "access" : "refresh");
          items.push({ jwe: (await keys.seal(`value-${i}`, { ctx, ts: T + i * 97_000 })).jwe, ctx });
        }
        const old = (await keys.active()).version;
        await keys.rotate();
        const bad = [
          { jwe: items[0]!.jwe, ctx: tokenCtx("gmail", "someone-else", "refresh") },
          { jwe: items[1]!.jwe.slice(0, -4) + (items[1]!.jwe.endsWith("AAAA") ? "BBBB" : "AAAA"), ctx: items[1]!.ctx },
          { jwe: "not a jwe", ctx: items[2]!.ctx },
        ];
        const { version, jwes } = await keys.resealMany!([...items, ...bad]);
        expect(version).toBe(old + 1);
        expect(jwes.slice(items.length)).toEqual([null, null, null]);
        for (const [i, it] of items.entries()) {
          const jwe = jwes[i]!;
          const a = readEnvelopeHeader(it.jwe);
          const b = readEnvelopeHeader(jwe);
          expect([b.version, b.ts, b.ctx]).toEqual([old + 1, a.ts, a.ctx]);
          expect(new TextDecoder().decode(await keys.open(jwe, { expectedCtx: it.ctx }))).toBe(`value-${i}`);
        }
        // Once the old version is retired, its envelopes no longer open for a reseal either.
        await agePastRetireGrace(h.db, old);
        await keys.retire(old);
        expect((await keys.resealMany!(items.slice(0, 3))).jwes).toEqual([null, null, null]);
      } finally {
        keys.close();
      }
    }, 30_000);
  }
});

test("ResealPool: close() rejects jobs still in flight (the caller's batch fails; nothing is written)", async () => {
  const pool = new ResealPool(1);
  const job = pool.run({ items: [], privateKeys: {}, publicKeys: {}, toSliceSeconds: 3600 });
  pool.close();
  await expect(job).rejects.toThrow("reseal pool closed");
  await expect(pool.run({ items: [], privateKeys: {}, publicKeys: {}, toSliceSeconds: 3600 })).rejects.toThrow("closed");
});
