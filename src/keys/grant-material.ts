/**
 * Grant material, issued by the key service: for version v and slices a..b, the minimal GGM
 * subtree seeds covering them (src/crypto/ggm.ts) and, for short ranges, each slice's private JWK.
 * The only place grant code meets private key material; callers plan, decide, shape and seal.
 */
import { toBase64url, zeroize } from "../crypto/bytes.ts";
import { type SeededNode, TREE_DEPTH, coverRange } from "../crypto/ggm.ts";
import type { EcPrivateJwk } from "../crypto/jwk.ts";
import { LruCache } from "../crypto/lru.ts";
import { type SliceKey, type SliceKeyDeriver, sliceKid } from "../crypto/slice-keys.ts";
import { childNative, leavesUnderNative, slicePrivateJwksNative } from "../crypto/slice-keys-native.ts";
import { KeyUnavailableError } from "../errors.ts";
import type { KeyVersion } from "./types.ts";

export interface GrantKey {
  slice: number;
  kid: string;
  privateJwk: EcPrivateJwk;
}

export interface GrantSeed {
  depth: number;
  index: number;
  seed: string;
}

export interface GrantMaterial {
  seeds: GrantSeed[];
  /** Empty when the range has more than `maxSliceKeys` slices (the seeds alone open them). */
  keys: GrantKey[];
}

/** How many seeds the material for slices from..to carries (no key material involved). */
export function grantSeedCount(from: number, to: number): number {
  return coverRange(from, to).length;
}

export async function grantMaterial(
  version: KeyVersion,
  slices: { from: number; to: number },
  opts: { maxSliceKeys: number },
): Promise<GrantMaterial> {
  const { from, to } = slices;
  const nodes = cacheOf(version.deriver);
  const cover = coverRange(from, to).map((n) => ({ ...n, seed: nodes.seed(n.depth, n.index) }));
  try {
    const seeds = cover.map((n) => ({ depth: n.depth, index: n.index, seed: toBase64url(n.seed) }));
    const keys = to - from + 1 <= opts.maxSliceKeys ? await nodes.keys(cover) : [];
    return { seeds, keys };
  } finally {
    for (const n of cover) zeroize(n.seed);
  }
}

/**
 * What grants of one version already derived: interior GGM node seeds and slice private JWKs. A
 * fresh node costs one HMAC-SHA256 per level below its deepest cached ancestor instead of one per
 * level from the root (32 for a one-slice grant): grants of ranges near now share all but their last
 * few levels. All of it is derivable from the root this process holds anyway; evicted and dropped
 * seeds are zeroed.
 */
class GrantCache {
  private readonly cache = new LruCache<string, Uint8Array>(8192, (_, seed) => zeroize(seed));
  /** Slice private JWKs grants derived (strings: dropped, not zeroed, like the deriver's own cache). */
  private readonly jwks = new LruCache<number, EcPrivateJwk>(4096);

  constructor(private readonly deriver: SliceKeyDeriver) {}

  /** A fresh buffer owned by the caller. */
  seed(depth: number, index: number): Uint8Array {
    if (depth === 0) return this.deriver.rootSeed.slice();
    let d = depth - 1;
    let seed: Uint8Array | undefined;
    for (; d > 0 && !seed; d--) seed = this.cache.get(`${d}:${Math.floor(index / 2 ** (depth - d))}`);
    if (seed) d++;
    else seed = this.deriver.rootSeed;
    let owned = false; // whether `seed` is a fresh leaf the cache does not hold
    for (let level = d + 1; level <= depth; level++) {
      const i = Math.floor(index / 2 ** (depth - level));
      seed = childNative(seed, (i % 2) as 0 | 1);
      owned = level === TREE_DEPTH;
      if (!owned) this.cache.set(`${level}:${i}`, seed);
    }
    return owned ? seed : seed.slice();
  }

  /**
   * The private JWKs of every slice under the cover nodes, in slice order: from the deriver's cache
   * or this one when derived before, otherwise natively from leaves walked down from the nodes.
   */
  async keys(cover: readonly SeededNode[]): Promise<GrantKey[]> {
    const leaves = leavesUnderNative(cover, MAX_LEAVES);
    try {
      const kid = (slice: number) => sliceKid(this.deriver.version, slice);
      const jwks: Array<EcPrivateJwk | Promise<SliceKey> | undefined> = leaves.map(
        ({ slice }) => this.jwks.get(slice) ?? this.deriver.cached(slice),
      );
      const fresh = leaves.filter((_, i) => jwks[i] === undefined);
      const derived = slicePrivateJwksNative(fresh.map(({ slice, seed }) => ({ seed, kid: kid(slice) })));
      for (let i = 0, next = 0; i < leaves.length; i++) {
        if (jwks[i] !== undefined) continue;
        const j = derived[next++]!;
        jwks[i] = j;
        this.jwks.set(leaves[i]!.slice, j);
      }
      return await Promise.all(
        leaves.map(async ({ slice }, i) => {
          const j = jwks[i]!;
          return { slice, kid: kid(slice), privateJwk: j instanceof Promise ? (await j).privateJwk : j };
        }),
      );
    } finally {
      for (const l of leaves) zeroize(l.seed);
    }
  }

  clear(): void {
    this.cache.clear();
    this.jwks.clear();
  }
}

/** Leaves `keys` walks at most: grants carry slice keys only for short ranges. */
const MAX_LEAVES = 1024;

const grantCaches = new WeakMap<SliceKeyDeriver, GrantCache>();

/**
 * Throws KeyUnavailableError once the version was retired (its deriver destroyed): material derived
 * before the retirement must not be released after it (a grant derives while its decision commits).
 */
export function assertIssuable(version: KeyVersion): void {
  if (version.deriver.rootSeed.length === 0)
    throw new KeyUnavailableError(`master key version ${version.version} is retired`);
}

function cacheOf(deriver: SliceKeyDeriver): GrantCache {
  let n = grantCaches.get(deriver);
  if (deriver.rootSeed.length === 0) {
    // Retired (the deriver was destroyed) since the grant was planned.
    n?.clear();
    grantCaches.delete(deriver);
    throw new KeyUnavailableError(`master key version ${deriver.version} is retired`);
  }
  if (!n) {
    n = new GrantCache(deriver);
    grantCaches.set(deriver, n);
  }
  return n;
}
