/**
 * The GGM tree (SPEC §4) that gives every 32-bit time slice its own seed: a node's seed reveals its
 * subtree and nothing else, so a grant can hand out a minimal set of subtree seeds for a slice range.
 */
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { CryptoInputError } from "./errors.ts";
import { utf8, zeroize } from "./bytes.ts";

export const TREE_DEPTH = 32;
export const MAX_SLICE = 2 ** 32 - 1;
export const SEED_BYTES = 32;

/** Domain-separation strings: changing either changes every slice key ever derived. */
export const GGM_ROOT_SALT = "chronokms/v1/ggm-salt";
export const GGM_ROOT_INFO = "chronokms/v1/ggm-root";

export interface TreeNode {
  depth: number;
  index: number;
}

export interface SeededNode extends TreeNode {
  seed: Uint8Array;
}

/**
 * RFC 5869 HKDF-SHA256(ikm = master scalar, salt = GGM_ROOT_SALT, info = GGM_ROOT_INFO, L = 32).
 * The version does not enter: each version has its own master scalar, so its tree is already distinct,
 * and keeping the root a function of the key alone means renumbering never changes slice keys.
 */
export function rootSeed(masterScalar: Uint8Array): Uint8Array<ArrayBuffer> {
  if (masterScalar.length !== 32) throw new CryptoInputError("master scalar must be 32 bytes");
  return hkdf(sha256, masterScalar, utf8(GGM_ROOT_SALT), utf8(GGM_ROOT_INFO), SEED_BYTES);
}

const BIT = [Uint8Array.of(0), Uint8Array.of(1)] as const;

/** GGM PRG step: child_b = HMAC-SHA256(key = seed, msg = one byte b) (RFC 2104). */
export function child(seed: Uint8Array, bit: 0 | 1): Uint8Array<ArrayBuffer> {
  return hmac(sha256, seed, BIT[bit]);
}

function assertNode(depth: number, index: number): void {
  if (!Number.isInteger(depth) || depth < 0 || depth > TREE_DEPTH)
    throw new CryptoInputError(`tree depth must be an integer in 0..${TREE_DEPTH}`);
  if (!Number.isInteger(index) || index < 0 || index >= 2 ** depth)
    throw new CryptoInputError(`node index must be an integer in 0..2^${depth}-1`);
}

export function assertSlice(slice: number): void {
  if (!Number.isInteger(slice) || slice < 0 || slice > MAX_SLICE)
    throw new CryptoInputError("slice must be an integer in 0..2^32-1");
}

/** Bit taken at `level` (1-based, from the top) on the path from the subtree root to node (depth, index). */
function pathBit(index: number, depth: number, level: number): 0 | 1 {
  return ((index / 2 ** (depth - level)) & 1) as 0 | 1;
}

/**
 * Walks down from one subtree root, keeping the last path so that nearby nodes (consecutive leaves,
 * the left-to-right nodes of a cover) only recompute the part of the path that differs: consecutive
 * leaves cost ~2 HMACs each instead of 32.
 */
export class SubtreeWalker {
  // path[k] is the seed at relative depth k along the current path; path[0] is the caller's root.
  private readonly path: Uint8Array[];
  private pathDepth = 0; // absolute depth of the deepest node on `path`
  private pathIndex = 0;

  constructor(
    root: Uint8Array,
    readonly depth = 0,
    readonly index = 0,
  ) {
    assertNode(depth, index);
    if (root.length !== SEED_BYTES) throw new CryptoInputError("seed must be 32 bytes");
    this.path = [root];
    this.pathDepth = depth;
    this.pathIndex = index;
  }

  contains(depth: number, index: number): boolean {
    return depth >= this.depth && Math.floor(index / 2 ** (depth - this.depth)) === this.index;
  }

  /** A fresh buffer owned by the caller. Throws if the node is not in this subtree. */
  node(depth: number, index: number): Uint8Array<ArrayBuffer> {
    assertNode(depth, index);
    if (!this.contains(depth, index))
      throw new CryptoInputError(`node (${depth}, ${index}) is outside subtree (${this.depth}, ${this.index})`);
    if (depth === this.depth) return this.path[0]!.slice();
    const parentDepth = depth - 1;
    const parentIndex = Math.floor(index / 2);
    // Longest prefix shared by the current path and the new parent.
    let common = Math.min(this.pathDepth, parentDepth);
    while (
      common > this.depth &&
      Math.floor(this.pathIndex / 2 ** (this.pathDepth - common)) !==
        Math.floor(parentIndex / 2 ** (parentDepth - common))
    )
      common--;
    const keep = common - this.depth + 1;
    for (let k = keep; k < this.path.length; k++) zeroize(this.path[k]);
    this.path.length = keep;
    for (let level = common + 1; level <= parentDepth; level++) {
      this.path.push(child(this.path[this.path.length - 1]!, pathBit(parentIndex, parentDepth, level)));
    }
    this.pathDepth = parentDepth;
    this.pathIndex = parentIndex;
    return child(this.path[this.path.length - 1]!, (index & 1) as 0 | 1);
  }

  leaf(slice: number): Uint8Array<ArrayBuffer> {
    assertSlice(slice);
    return this.node(TREE_DEPTH, slice);
  }

  /** Zeroes the derived path (not the caller's root). */
  dispose(): void {
    for (let k = 1; k < this.path.length; k++) zeroize(this.path[k]);
    this.path.length = 1;
    this.pathDepth = this.depth;
    this.pathIndex = this.index;
  }
}

export function nodeSeed(root: Uint8Array, depth: number, index: number): Uint8Array<ArrayBuffer> {
  const w = new SubtreeWalker(root);
  try {
    return w.node(depth, index);
  } finally {
    w.dispose();
  }
}

export function leafSeed(root: Uint8Array, slice: number): Uint8Array<ArrayBuffer> {
  assertSlice(slice);
  return nodeSeed(root, TREE_DEPTH, slice);
}

/** First and last leaf under a node. */
export function subtreeRange(depth: number, index: number): { from: number; to: number } {
  assertNode(depth, index);
  const size = 2 ** (TREE_DEPTH - depth);
  return { from: index * size, to: index * size + size - 1 };
}

/**
 * Minimal canonical cover of leaves from..to (inclusive): greedily take, from the left, the largest
 * aligned subtree that fits. At most 2 nodes per level and 2·31 overall; left to right.
 */
export function coverRange(from: number, to: number): TreeNode[] {
  assertSlice(from);
  assertSlice(to);
  if (from > to) throw new CryptoInputError("range end is before its start");
  const out: TreeNode[] = [];
  let a = from;
  while (a <= to) {
    let h = 0; // subtree height: it holds 2^h leaves
    while (h < TREE_DEPTH && a % 2 ** (h + 1) === 0 && a + 2 ** (h + 1) - 1 <= to) h++;
    out.push({ depth: TREE_DEPTH - h, index: a / 2 ** h });
    a += 2 ** h;
  }
  return out;
}

export function deriveCover(root: Uint8Array, from: number, to: number): SeededNode[] {
  const w = new SubtreeWalker(root);
  try {
    return coverRange(from, to).map((n) => ({ ...n, seed: w.node(n.depth, n.index) }));
  } finally {
    w.dispose();
  }
}

/** Leaf seed of `slice` from the seed of node (depth, index); refuses slices outside that subtree. */
export function leafFromSubtree(
  seed: Uint8Array,
  depth: number,
  index: number,
  slice: number,
): Uint8Array<ArrayBuffer> {
  assertSlice(slice);
  const w = new SubtreeWalker(seed, depth, index);
  try {
    return w.leaf(slice);
  } finally {
    w.dispose();
  }
}

/**
 * Leaf seeds for slices from..to (inclusive) under a subtree (the whole tree by default), walking the
 * tree once. Each yielded seed is a fresh buffer owned by the consumer.
 */
export function* leavesInRange(
  seed: Uint8Array,
  from: number,
  to: number,
  subtree: TreeNode = { depth: 0, index: 0 },
): Generator<{ slice: number; seed: Uint8Array }> {
  assertSlice(from);
  assertSlice(to);
  if (from > to) throw new CryptoInputError("range end is before its start");
  const w = new SubtreeWalker(seed, subtree.depth, subtree.index);
  try {
    for (let e = from; e <= to; e++) yield { slice: e, seed: w.leaf(e) };
  } finally {
    w.dispose();
  }
}
