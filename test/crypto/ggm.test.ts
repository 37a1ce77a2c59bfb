// GGM tree: the range cover is exact and minimal-shaped, cover-derived leaves equal root-derived ones,
// and subtree seeds refuse anything outside their subtree.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  MAX_SLICE,
  SubtreeWalker,
  child,
  coverRange,
  deriveCover,
  leafFromSubtree,
  leafSeed,
  leavesInRange,
  nodeSeed,
  subtreeRange,
  toHex,
} from "../../src/crypto/index.ts";

const root = new Uint8Array(32).map((_, i) => i * 7 + 1);

/** Ranges biased toward the edges: 0, 2^32-1, single slices, powers of two. */
const sliceArb = fc.oneof(
  fc.integer({ min: 0, max: MAX_SLICE }),
  fc.constantFrom(0, 1, MAX_SLICE, MAX_SLICE - 1, 2 ** 31, 2 ** 31 - 1, 493000),
  fc.integer({ min: 0, max: 31 }).map((k) => 2 ** k),
  fc.integer({ min: 1, max: 32 }).map((k) => 2 ** k - 1),
);
const rangeArb = fc.oneof(
  fc.tuple(sliceArb, sliceArb).map(([a, b]) => (a <= b ? [a, b] : [b, a]) as [number, number]),
  sliceArb.map((a) => [a, a] as [number, number]),
  fc
    .tuple(sliceArb, fc.integer({ min: 0, max: 200 }))
    .map(
      ([a, w]) =>
        [Math.max(0, Math.min(a, MAX_SLICE - w)), Math.min(MAX_SLICE, Math.max(0, Math.min(a, MAX_SLICE - w)) + w)] as [
          number,
          number,
        ],
    ),
);

describe("coverRange", () => {
  test("covers exactly from..to, disjoint, ≤ 2 per level, ≤ 64 total", () => {
    fc.assert(
      fc.property(rangeArb, ([a, b]) => {
        const nodes = coverRange(a, b);
        expect(nodes.length).toBeLessThanOrEqual(64);
        const perLevel = new Map<number, number>();
        let next = a;
        for (const n of nodes) {
          perLevel.set(n.depth, (perLevel.get(n.depth) ?? 0) + 1);
          const r = subtreeRange(n.depth, n.index);
          expect(r.from).toBe(next); // no gap, no overlap, in order
          next = r.to + 1;
        }
        expect(next).toBe(b + 1); // no extras past the end
        for (const c of perLevel.values()) expect(c).toBeLessThanOrEqual(2);
      }),
      { numRuns: 3000 },
    );
  });

  test("whole tree is the root; single slice is one leaf; edges", () => {
    expect(coverRange(0, MAX_SLICE)).toEqual([{ depth: 0, index: 0 }]);
    expect(coverRange(7, 7)).toEqual([{ depth: 32, index: 7 }]);
    expect(coverRange(MAX_SLICE, MAX_SLICE)).toEqual([{ depth: 32, index: MAX_SLICE }]);
    expect(coverRange(1, MAX_SLICE - 1).length).toBe(62);
  });

  test("rejects bad ranges", () => {
    for (const [a, b] of [
      [5, 4],
      [-1, 3],
      [0, 2 ** 32],
      [0.5, 3],
      [Number.NaN, 1],
    ] as const)
      expect(() => coverRange(a, b)).toThrow();
  });
});

describe("derivation through a cover", () => {
  test("any leaf in range from its cover node equals the leaf from the root", () => {
    fc.assert(
      fc.property(rangeArb, fc.double({ min: 0, max: 1, noNaN: true }), ([a, b], t) => {
        const e = Math.min(b, a + Math.floor(t * (b - a + 1)));
        const cover = deriveCover(root, a, b);
        const node = cover.find((n) => {
          const r = subtreeRange(n.depth, n.index);
          return r.from <= e && e <= r.to;
        })!;
        expect(toHex(leafFromSubtree(node.seed, node.depth, node.index, e))).toBe(toHex(leafSeed(root, e)));
      }),
      { numRuns: 300 },
    );
  });

  test("leavesInRange walks to the same leaves as independent derivations", () => {
    const from = 2 ** 32 - 70;
    const got = [...leavesInRange(root, from, MAX_SLICE)];
    expect(got.length).toBe(70);
    for (const { slice, seed } of got) expect(toHex(seed)).toBe(toHex(leafSeed(root, slice)));
  });

  test("the walker agrees with a naive chain for arbitrary node orders", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc
            .integer({ min: 0, max: 32 })
            .chain((d) => fc.tuple(fc.constant(d), fc.integer({ min: 0, max: 2 ** d - 1 }))),
          { maxLength: 20 },
        ),
        (nodes) => {
          const w = new SubtreeWalker(root);
          for (const [d, i] of nodes) {
            let s = root;
            for (let level = 1; level <= d; level++) s = child(s, (Math.floor(i / 2 ** (d - level)) % 2) as 0 | 1);
            expect(toHex(w.node(d, i))).toBe(toHex(s));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test("yielded seeds are not wiped by the walker afterwards", () => {
    const seeds = [...leavesInRange(root, 10, 20)].map((l) => l.seed);
    expect(seeds.every((s) => s.some((b) => b !== 0))).toBe(true);
    expect(root.some((b) => b !== 0)).toBe(true);
  });
});

describe("subtree isolation", () => {
  test("leafFromSubtree refuses slices outside the subtree, for every node of a cover", () => {
    fc.assert(
      fc.property(rangeArb, ([a, b]) => {
        for (const n of deriveCover(root, a, b)) {
          const r = subtreeRange(n.depth, n.index);
          if (r.from > 0)
            expect(() => leafFromSubtree(n.seed, n.depth, n.index, r.from - 1)).toThrow(/outside subtree/);
          if (r.to < MAX_SLICE)
            expect(() => leafFromSubtree(n.seed, n.depth, n.index, r.to + 1)).toThrow(/outside subtree/);
          if (a > 0) expect(() => leafFromSubtree(n.seed, n.depth, n.index, a - 1)).toThrow();
          if (b < MAX_SLICE) expect(() => leafFromSubtree(n.seed, n.depth, n.index, b + 1)).toThrow();
        }
      }),
      { numRuns: 300 },
    );
  });

  test("a subtree seed is not its sibling's, parent's or any leaf's", () => {
    const left = nodeSeed(root, 10, 6);
    const right = nodeSeed(root, 10, 7);
    const parent = nodeSeed(root, 9, 3);
    expect(toHex(left)).not.toBe(toHex(right));
    expect(toHex(child(parent, 0))).toBe(toHex(left));
    expect(toHex(child(parent, 1))).toBe(toHex(right));
    expect(toHex(parent)).not.toBe(toHex(root));
  });

  test("lying about a seed's position yields a different (useless) leaf", () => {
    const n = nodeSeed(root, 20, 5);
    // Claiming the node is at index 6 derives a leaf for slice in node 6, which is not the real leaf.
    const fake = leafFromSubtree(n, 20, 6, 6 * 4096);
    expect(toHex(fake)).not.toBe(toHex(leafSeed(root, 6 * 4096)));
  });
});
