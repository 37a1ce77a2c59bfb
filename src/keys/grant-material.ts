/**
 * Grant material, issued by the key service: for version v and slices a..b, the minimal GGM
 * subtree seeds covering them (src/crypto/ggm.ts) and, for short ranges, each slice's private JWK.
 * The only place grant code meets private key material; callers plan, decide, shape and seal.
 */
import { toBase64url, zeroize } from "../crypto/bytes.ts";
import { TREE_DEPTH, child, coverRange } from "../crypto/ggm.ts";
import type { EcPrivateJwk } from "../crypto/jwk.ts";
import { LruCache } from "../crypto/lru.ts";
import type { SliceKeyDeriver } from "../crypto/slice-keys.ts";
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
  const nodes = nodesOf(version.deriver);
  const seeds = coverRange(from, to).map((n) => {
    const seed = nodes.seed(n.depth, n.index);
    try {
      return { depth: n.depth, index: n.index, seed: toBase64url(seed) };
    } finally {
      zeroize(seed);
    }
  });
  const keys =
    to - from + 1 <= opts.maxSliceKeys
      ? (await version.deriver.range(from, to)).map((k) => ({ slice: k.slice, kid: k.kid, privateJwk: k.privateJwk }))
      : [];
  return { seeds, keys };
}

/**
 * Interior GGM node seeds already derived for grants, per version. A fresh node costs one
 * HMAC-SHA256 per level below its deepest cached ancestor instead of one per level from the root
 * (32 for a one-slice grant): grants of ranges near now share all but their last few levels. The
 * seeds are derivable from the root this process holds anyway; evicted and dropped ones are zeroed.
 */
class NodeSeeds {
  private readonly cache = new LruCache<string, Uint8Array>(8192, (_, seed) => zeroize(seed));

  constructor(private readonly deriver: SliceKeyDeriver) {}

  /** A fresh buffer owned by the caller. */
  seed(depth: number, index: number): Uint8Array {
    if (depth === 0) return this.deriver.rootSeed.slice();
    let d = depth - 1;
    let seed: Uint8Array | undefined;
    for (; d > 0 && !seed; d--) seed = this.cache.get(`${d}:${Math.floor(index / 2 ** (depth - d))}`);
    if (seed) d++;
    else seed = this.deriver.rootSeed;
    for (let level = d + 1; level <= depth; level++) {
      const i = Math.floor(index / 2 ** (depth - level));
      seed = child(seed, (i % 2) as 0 | 1);
      if (level < TREE_DEPTH) this.cache.set(`${level}:${i}`, seed);
    }
    return seed.slice();
  }

  clear(): void {
    this.cache.clear();
  }
}

const nodeSeeds = new WeakMap<SliceKeyDeriver, NodeSeeds>();

function nodesOf(deriver: SliceKeyDeriver): NodeSeeds {
  let n = nodeSeeds.get(deriver);
  if (deriver.rootSeed.length === 0) {
    // Retired (the deriver was destroyed) since the grant was planned.
    n?.clear();
    nodeSeeds.delete(deriver);
    throw new KeyUnavailableError(`master key version ${deriver.version} is retired`);
  }
  if (!n) {
    n = new NodeSeeds(deriver);
    nodeSeeds.set(deriver, n);
  }
  return n;
}
