/**
 * Time slices and their P-256 keypairs: slice index arithmetic, leaf seed → private scalar (RFC 9380
 * hash-to-scalar, bias-free), JWKs with kid "<version>:<slice>", and a cached per-version deriver.
 */
import { p256_hasher } from "@noble/curves/nist.js";
import { CryptoInputError } from "./errors.ts";
import { bigIntToBytes, utf8, zeroize } from "./bytes.ts";
import { MAX_SLICE, SubtreeWalker, assertSlice, leavesInRange, rootSeed } from "./ggm.ts";
import { type EcPrivateJwk, type EcPublicJwk, importPublicJwk, importScalar, toPublicJwk } from "./jwk.ts";
import { LruCache } from "./lru.ts";

/** RFC 9380 §5 hash_to_field DST; expand_message_xmd(SHA-256), k = 128, L = 48 bytes, mod n. */
export const SLICE_SCALAR_DST = "chronokms-v1-slice-scalar";
const DST_BYTES = utf8(SLICE_SCALAR_DST);

function assertSliceSeconds(sliceSeconds: number): void {
  if (!Number.isSafeInteger(sliceSeconds) || sliceSeconds < 1)
    throw new CryptoInputError("sliceSeconds must be a positive integer");
}

/** e = floor(t_ms / 1000 / sliceSeconds), in exact integer arithmetic (float division can round up at a boundary). */
export function sliceIndex(tMs: number, sliceSeconds: number): number {
  assertSliceSeconds(sliceSeconds);
  if (!Number.isSafeInteger(tMs) || tMs < 0)
    throw new CryptoInputError("timestamp must be a non-negative integer number of milliseconds");
  const width = sliceSeconds * 1000;
  let e = Math.floor(tMs / width);
  if (e * width > tMs) e--;
  else if ((e + 1) * width <= tMs) e++;
  if (e > MAX_SLICE) throw new CryptoInputError("timestamp is beyond the last time slice (2^32-1)");
  return e;
}

/** The half-open interval [startMs, endMs) of a slice. */
export function sliceRange(slice: number, sliceSeconds: number): { startMs: number; endMs: number } {
  assertSlice(slice);
  assertSliceSeconds(sliceSeconds);
  const width = sliceSeconds * 1000;
  const endMs = (slice + 1) * width;
  if (!Number.isSafeInteger(endMs)) throw new CryptoInputError("slice end is beyond the representable time range");
  return { startMs: slice * width, endMs };
}

export function sliceKid(version: number, slice: number): string {
  return `${version}:${slice}`;
}

const KID_RE = /^(0|[1-9][0-9]{0,15}):(0|[1-9][0-9]{0,9})$/;

/** Parses "<version>:<slice>" (canonical decimal only, so one slice has one kid); null if malformed. */
export function parseKid(kid: string): { version: number; slice: number } | null {
  const m = KID_RE.exec(kid);
  if (!m) return null;
  const version = Number(m[1]);
  const slice = Number(m[2]);
  if (!Number.isSafeInteger(version) || slice > MAX_SLICE) return null;
  return { version, slice };
}

/** 32-byte big-endian slice private scalar, uniform in [1, n). */
export function sliceScalar(leafSeed: Uint8Array): Uint8Array<ArrayBuffer> {
  if (leafSeed.length !== 32) throw new CryptoInputError("leaf seed must be 32 bytes");
  const s = p256_hasher.hashToScalar(leafSeed, { DST: DST_BYTES });
  // Probability 2^-256; refusing is still better than a zero key.
  if (s === 0n) throw new CryptoInputError("leaf seed maps to the zero scalar");
  return bigIntToBytes(s, 32);
}

export interface SliceKey {
  slice: number;
  kid: string;
  publicJwk: EcPublicJwk;
  privateJwk: EcPrivateJwk;
  publicKey: CryptoKey;
  privateKey: CryptoKey;
}

function decorate<T extends EcPublicJwk>(jwk: T, kid: string): T {
  return { ...jwk, kid, alg: "ECDH-ES", use: "enc" };
}

/** Full slice key material from a leaf seed (does not consume or zero the seed). */
export async function sliceKeyFromLeaf(leafSeed: Uint8Array, slice: number, version: number): Promise<SliceKey> {
  const kid = sliceKid(version, slice);
  const d = sliceScalar(leafSeed);
  try {
    const { privateKey, jwk } = await importScalar(d, "ECDH");
    const privateJwk = decorate(jwk, kid);
    const publicJwk = toPublicJwk(privateJwk);
    const publicKey = await importPublicJwk(publicJwk, "ECDH");
    return { slice, kid, publicJwk, privateJwk, publicKey, privateKey };
  } finally {
    zeroize(d);
  }
}

export async function slicePrivateJwk(leafSeed: Uint8Array, kid: string): Promise<EcPrivateJwk> {
  const d = sliceScalar(leafSeed);
  try {
    return decorate((await importScalar(d, "ECDH")).jwk, kid);
  } finally {
    zeroize(d);
  }
}

export async function slicePublicJwk(leafSeed: Uint8Array, kid: string): Promise<EcPublicJwk> {
  return toPublicJwk(await slicePrivateJwk(leafSeed, kid));
}

export interface SliceKeyDeriverOptions {
  masterScalar: Uint8Array;
  version: number;
  sliceSeconds: number;
  /** Slices kept in memory (each ~2 KB with its CryptoKeys). */
  cacheSize?: number;
}

/**
 * Slice keys of one master key version. Holds only the GGM root (the master scalar is not kept);
 * caches each slice's JWKs and imported CryptoKeys, and shares in-flight derivations between callers.
 */
export class SliceKeyDeriver {
  readonly version: number;
  readonly sliceSeconds: number;
  private root: Uint8Array;
  private readonly cache: LruCache<number, Promise<SliceKey>>;

  constructor(opts: SliceKeyDeriverOptions) {
    assertSliceSeconds(opts.sliceSeconds);
    if (!Number.isSafeInteger(opts.version) || opts.version < 0)
      throw new CryptoInputError("version must be a non-negative integer");
    this.version = opts.version;
    this.sliceSeconds = opts.sliceSeconds;
    this.root = rootSeed(opts.masterScalar);
    this.cache = new LruCache(opts.cacheSize ?? 4096);
  }

  /** The GGM root; grants derive cover seeds from it. Do not mutate. */
  get rootSeed(): Uint8Array {
    return this.root;
  }

  get(slice: number): Promise<SliceKey> {
    assertSlice(slice);
    const hit = this.cache.get(slice);
    if (hit) return hit;
    const w = new SubtreeWalker(this.root);
    const leaf = w.leaf(slice);
    w.dispose();
    const p = sliceKeyFromLeaf(leaf, slice, this.version).finally(() => zeroize(leaf));
    this.cache.set(slice, p);
    p.catch(() => this.cache.delete(slice));
    return p;
  }

  /** The slice's key if cached or being derived; derives nothing. */
  cached(slice: number): Promise<SliceKey> | undefined {
    return this.cache.get(slice);
  }

  forTime(tMs: number): Promise<SliceKey> {
    return this.get(sliceIndex(tMs, this.sliceSeconds));
  }

  /** Keys for slices from..to, walking the tree once for the ones not cached. */
  async range(from: number, to: number): Promise<SliceKey[]> {
    const out: Promise<SliceKey>[] = [];
    let walker: Generator<{ slice: number; seed: Uint8Array }> | undefined;
    for (let e = from; e <= to; e++) {
      const hit = this.cache.get(e);
      if (hit) {
        out.push(hit);
        continue;
      }
      walker ??= leavesInRange(this.root, e, to);
      // The walker is positioned at or before e: advance it (skipped cached leaves are zeroed).
      let next = walker.next();
      while (!next.done && next.value.slice < e) {
        zeroize(next.value.seed);
        next = walker.next();
      }
      if (next.done) throw new Error("leaf walk ended early");
      const { seed } = next.value;
      const p = sliceKeyFromLeaf(seed, e, this.version).finally(() => zeroize(seed));
      this.cache.set(e, p);
      p.catch(() => this.cache.delete(e));
      out.push(p);
    }
    walker?.return(undefined);
    return Promise.all(out);
  }

  /** Zeroes the root and drops cached keys; the deriver is unusable afterwards. */
  destroy(): void {
    zeroize(this.root);
    this.root = new Uint8Array(0);
    this.cache.clear();
  }
}
