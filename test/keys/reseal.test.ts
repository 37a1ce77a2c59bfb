/**
 * KeyService.resealTokens (rotation's batch open + seal of token fields), on the calling thread and
 * on worker threads: v2 and v1 envelopes come back as v2 envelopes under the active version with the
 * new ctx; null (never a wrong value) for anything that must not open.
 */
import { expect, test } from "bun:test";
import { readTokenEnvelopeHeader } from "../../src/crypto/index.ts";
import { ResealPool } from "../../src/keys/reseal-pool.ts";
import { createKeyService } from "../../src/keys/service.ts";
import { fieldContexts, legacyTokenContext, tokenContext } from "../../src/tokens/record.ts";
import { oauthTokenRewrappable } from "../../src/tokens/rewrap.ts";
import { describeEachDb } from "../support/databases.ts";
import { agePastRetireGrace, kekOf, markLegacyTokenEnvelopes, quietLog } from "./helpers.ts";
import { TEST_KEK } from "../support/app.ts";

const T = Date.UTC(2026, 2, 1, 10);

describeEachDb("KeyService.resealTokens", (h) => {
  for (const workers of [0, 2]) {
    test(`${workers === 0 ? "on this thread" : "on 2 worker threads"}: v2 and v1 values re-sealed as v2 under the active version; wrong ctx, damaged, retired → null`, async () => {
      await h.db.prisma.oAuthToken.deleteMany({});
      await h.db.prisma.masterKey.deleteMany({});
      const keys = await createKeyService({
        db: h.db,
        ...kekOf(TEST_KEK),
        sliceSeconds: 3600,
        log: quietLog,
        rewrappables: [oauthTokenRewrappable(h.db)],
        resealWorkers: workers,
      });
      try {
        // This version may hold v1 envelopes (as if it predated key separation).
        await markLegacyTokenEnvelopes(h.db);
        await keys.refresh();
        const items = [];
        for (let i = 0; i < 300; i++) {
          const row = { integration: "gmail", userId: `u${i}`, version: 3 };
          const field = i % 2 ? "access" : "refresh";
          const c = fieldContexts(row, field);
          const jwe =
            i % 3 === 0
              ? (
                  await keys.seal(`value-${i}`, {
                    ctx: legacyTokenContext("gmail", row.userId, field),
                    ts: T + i * 97_000,
                  })
                ).jwe
              : (await keys.sealToken(`value-${i}`, { ctx: c.ctx })).jwe;
          items.push({ jwe, ...c, newCtx: tokenContext("gmail", row.userId, field, 4) });
        }
        const old = (await keys.active()).version;
        await keys.rotate();
        const bad = [
          {
            ...items[0]!,
            ctx: tokenContext("gmail", "someone-else", "refresh", 3),
            legacyCtx: legacyTokenContext("gmail", "someone-else", "refresh"),
          },
          { ...items[1]!, jwe: items[1]!.jwe.slice(0, -4) + (items[1]!.jwe.endsWith("AAAA") ? "BBBB" : "AAAA") },
          { ...items[2]!, jwe: "not a jwe" },
          { ...items[4]!, ctx: tokenContext("gmail", "u4", "refresh", 2) }, // an older row version
        ];
        const { version, jwes } = await keys.resealTokens([...items, ...bad]);
        expect(version).toBe(old + 1);
        expect(jwes.slice(items.length)).toEqual([null, null, null, null]);
        for (const [i, it] of items.entries()) {
          const jwe = jwes[i]!;
          const hd = readTokenEnvelopeHeader(jwe);
          expect([hd.version, hd.ctx]).toEqual([old + 1, it.newCtx]);
          expect(new TextDecoder().decode(await keys.openToken(jwe, { ctx: it.newCtx, legacyCtx: it.legacyCtx }))).toBe(
            `value-${i}`,
          );
        }
        // Once the old version is retired, its envelopes no longer open for a reseal either.
        await h.db.prisma.oAuthToken.deleteMany({});
        await agePastRetireGrace(h.db, old);
        await keys.retire(old);
        expect((await keys.resealTokens(items.slice(0, 3))).jwes).toEqual([null, null, null]);
      } finally {
        keys.close();
      }
    }, 30_000);
  }
});

test("ResealPool: close() rejects jobs still in flight (the caller's batch fails; nothing is written)", async () => {
  const pool = new ResealPool(1);
  const job = pool.run({ items: [], tokenRoots: { 1: new Uint8Array(32) }, privateKeys: {}, toVersion: 1 });
  pool.close();
  await expect(job).rejects.toThrow("reseal pool closed");
  await expect(
    pool.run({ items: [], tokenRoots: { 1: new Uint8Array(32) }, privateKeys: {}, toVersion: 1 }),
  ).rejects.toThrow("closed");
});
