/**
 * Grant material from the key service: the cover seeds come from a cache of interior GGM nodes and
 * must be exactly what deriveCover gives from the root, cold or warm, for any range; slice keys only
 * up to the limit; nothing for a version retired (deriver destroyed) since the grant was planned.
 */
import { expect, test } from "bun:test";
import { SliceKeyDeriver, deriveCover, toBase64url } from "../../src/crypto/index.ts";
import { KeyUnavailableError } from "../../src/errors.ts";
import { grantMaterial } from "../../src/keys/grant-material.ts";
import type { KeyVersion } from "../../src/keys/types.ts";

function version(): KeyVersion {
  const deriver = new SliceKeyDeriver({
    masterScalar: crypto.getRandomValues(new Uint8Array(32)),
    version: 3,
    sliceSeconds: 60,
  });
  return { version: 3, status: "active", sliceSeconds: 60, publicJwk: {} as never, deriver };
}

const NOW = Math.floor(Date.UTC(2026, 10, 28, 8) / 60_000);
const RANGES: Array<[number, number]> = [
  [0, 0],
  [0, 2 ** 32 - 1],
  [2 ** 32 - 3, 2 ** 32 - 1],
  [5, 5000],
  [NOW, NOW],
  [NOW - 60, NOW],
  [NOW - 1440, NOW],
  [NOW + 1, NOW + 1],
  [123_456, 123_456 + 64],
];

test("cover seeds equal deriveCover from the root, cold and warm, in any order", async () => {
  const kv = version();
  const want = (a: number, b: number) =>
    deriveCover(kv.deriver.rootSeed, a, b).map((n) => ({ depth: n.depth, index: n.index, seed: toBase64url(n.seed) }));
  for (const order of [RANGES, [...RANGES].reverse(), RANGES]) {
    for (const [a, b] of order) {
      const m = await grantMaterial(kv, { from: a, to: b }, { maxSliceKeys: 0 });
      expect(m.seeds).toEqual(want(a, b));
      expect(m.keys).toEqual([]);
    }
  }
  for (let i = 0; i < 200; i++) {
    const a = NOW - Math.floor(Math.random() * 100_000);
    const b = a + Math.floor(Math.random() * 3000);
    expect((await grantMaterial(kv, { from: a, to: b }, { maxSliceKeys: 0 })).seeds).toEqual(want(a, b));
  }
  kv.deriver.destroy();
});

test("slice keys up to the limit only; a destroyed version gives nothing", async () => {
  const kv = version();
  const m = await grantMaterial(kv, { from: NOW - 63, to: NOW }, { maxSliceKeys: 64 });
  expect(m.keys.map((k) => k.slice)).toEqual(Array.from({ length: 64 }, (_, i) => NOW - 63 + i));
  expect(m.keys[0]!.privateJwk).toEqual((await kv.deriver.get(NOW - 63)).privateJwk);
  expect((await grantMaterial(kv, { from: NOW - 64, to: NOW }, { maxSliceKeys: 64 })).keys).toEqual([]);
  kv.deriver.destroy();
  const err = await grantMaterial(kv, { from: NOW, to: NOW }, { maxSliceKeys: 64 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(KeyUnavailableError);
});
