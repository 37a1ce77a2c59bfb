/**
 * Grant material, issued by the key service: for version v and slices a..b, the minimal GGM
 * subtree seeds covering them (src/crypto/ggm.ts) and, for short ranges, each slice's private JWK.
 * The only place grant code meets private key material; callers plan, decide, shape and seal.
 */
import { toBase64url, zeroize } from "../crypto/bytes.ts";
import { coverRange, deriveCover } from "../crypto/ggm.ts";
import type { EcPrivateJwk } from "../crypto/jwk.ts";
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
  const cover = deriveCover(version.deriver.rootSeed, from, to);
  const seeds = cover.map((n) => ({ depth: n.depth, index: n.index, seed: toBase64url(n.seed) }));
  zeroize(...cover.map((n) => n.seed));
  const keys =
    to - from + 1 <= opts.maxSliceKeys
      ? (await version.deriver.range(from, to)).map((k) => ({ slice: k.slice, kid: k.kid, privateJwk: k.privateJwk }))
      : [];
  return { seeds, keys };
}
