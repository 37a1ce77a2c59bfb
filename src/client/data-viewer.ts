/**
 * DataViewer: opens data with the keys of one grant. Slice keys come from the grant's per-slice
 * JWKs or are derived from its subtree seeds; anything outside the grant (another key version,
 * a slice outside the granted range) is refused before any decryption is attempted.
 */
import { openEcdhEs } from "../crypto/ecdh-es.ts";
import { decryptEnvelope, readEnvelopeHeader } from "../crypto/envelope.ts";
import { leafFromSubtree, subtreeRange } from "../crypto/ggm.ts";
import { sliceKeyFromLeaf } from "../crypto/slice-keys.ts";
import { type EcPrivateJwk, importPrivateJwk } from "../crypto/jwk.ts";
import { assertNoDuplicateMembers } from "../crypto/strict-json.ts";
import { fromBase64url, utf8Decode, zeroize } from "../crypto/bytes.ts";
import { LruCache } from "../crypto/lru.ts";
import type { Grant, GrantSeed, GrantSliceKey } from "./types.ts";
import { GrantMismatchError, OutsideGrantError } from "./errors.ts";

/** `typ` of a grant sealed to the requester's key (src/access/grants.ts). */
const GRANT_JWE_TYP = "chronokms-grant+jwe";

/** A grant as the service returns it; `covered` is absent from v1 servers. */
export type GrantInput = Omit<Grant, "covered"> & Partial<Pick<Grant, "covered">>;

export interface GrantKeys {
  keys: GrantSliceKey[];
  seeds: GrantSeed[];
}

export class DataViewer {
  private readonly keyCache = new LruCache<number, Promise<CryptoKey>>(1024);
  private readonly byKid = new Map<string, GrantSliceKey>();

  private constructor(
    readonly grant: Omit<GrantInput, "keys" | "seeds" | "encrypted">,
    private readonly material: GrantKeys,
  ) {
    for (const k of material.keys) this.byKid.set(k.kid, k);
  }

  /**
   * Opens a grant. When the service encrypted it to the requester's registered public key
   * (`encrypted`), pass the matching private JWK.
   */
  static async fromGrant(grant: GrantInput, opts: { privateKeyJwk?: EcPrivateJwk } = {}): Promise<DataViewer> {
    let material: GrantKeys;
    if (grant.encrypted) {
      if (!opts.privateKeyJwk) throw new TypeError("this grant is encrypted to your public key: pass privateKeyJwk");
      const key = await importPrivateJwk(opts.privateKeyJwk, "ECDH").catch((e: unknown) => {
        throw new TypeError("privateKeyJwk is not a P-256 private JWK", { cause: e });
      });
      let headerText: string;
      try {
        headerText = utf8Decode(fromBase64url(grant.encrypted.split(".", 1)[0] ?? ""));
        assertNoDuplicateMembers(headerText);
      } catch {
        throw new GrantMismatchError("the sealed grant's protected header is malformed or has duplicate members");
      }
      // A sealed grant that does not open (wrong key, edited part…) is the one DecryptionFailedError.
      const { plaintext, header: h } = await openEcdhEs(grant.encrypted, key);
      // The protected header (authenticated as AAD) binds the sealed keys to this grant: a sealed
      // payload of another grant, version or slice range pasted into this response is refused.
      const slices = h.slices as { from?: unknown; to?: unknown } | undefined;
      const mismatch =
        h.typ !== GRANT_JWE_TYP
          ? "typ"
          : h.gid !== grant.id
            ? "gid"
            : h.ver !== grant.keyVersion
              ? "ver"
              : typeof slices !== "object" ||
                  slices === null ||
                  slices.from !== grant.slices.from ||
                  slices.to !== grant.slices.to ||
                  Object.keys(slices).length !== 2
                ? "slices"
                : null;
      if (mismatch) {
        zeroize(plaintext);
        throw new GrantMismatchError(`the sealed grant's protected header does not match the grant (${mismatch})`);
      }
      let inner: Partial<GrantKeys>;
      try {
        inner = JSON.parse(utf8Decode(plaintext)) as Partial<GrantKeys>;
      } catch {
        throw new GrantMismatchError("the sealed grant's payload is not JSON");
      } finally {
        zeroize(plaintext);
      }
      material = { keys: inner.keys ?? [], seeds: inner.seeds ?? [] };
      // The header check does not prove origin (ECDH-ES: anyone with the public key can seal), so
      // the payload must at least stay inside what the header says.
      const outside = materialOutside(material, grant.keyVersion, grant.slices);
      if (outside) throw new GrantMismatchError(`the sealed grant's payload does not match its header (${outside})`);
    } else {
      material = { keys: grant.keys ?? [], seeds: grant.seeds ?? [] };
    }
    const { keys: _k, seeds: _s, encrypted: _e, ...meta } = grant;
    return new DataViewer(meta, material);
  }

  /** Whether a ciphertext's slice lies inside this grant (without decrypting it). */
  covers(jwe: string): boolean {
    try {
      const h = readEnvelopeHeader(jwe);
      return (
        h.version === this.grant.keyVersion && h.slice >= this.grant.slices.from && h.slice <= this.grant.slices.to
      );
    } catch {
      return false;
    }
  }

  /** Decrypts an envelope whose context must be `expectedCtx`. */
  async decrypt(jwe: string, opts: { expectedCtx: string }): Promise<Uint8Array> {
    let header: ReturnType<typeof readEnvelopeHeader>;
    try {
      header = readEnvelopeHeader(jwe);
    } catch {
      throw new OutsideGrantError("not a chronokms envelope");
    }
    if (header.version !== this.grant.keyVersion) {
      throw new OutsideGrantError(
        `ciphertext is under key version ${header.version}; this grant is for version ${this.grant.keyVersion}`,
      );
    }
    const { from, to } = this.grant.slices;
    if (header.slice < from || header.slice > to) {
      throw new OutsideGrantError(`ciphertext is for slice ${header.slice}; this grant covers slices ${from}..${to}`);
    }
    const privateKey = await this.sliceKey(header.slice, header.kid);
    return decryptEnvelope(jwe, {
      privateKey,
      expectedCtx: opts.expectedCtx,
      expectedKid: header.kid,
      sliceSeconds: this.grant.sliceSeconds,
    });
  }

  async decryptToString(jwe: string, opts: { expectedCtx: string }): Promise<string> {
    return utf8Decode(await this.decrypt(jwe, opts));
  }

  private sliceKey(slice: number, kid: string): Promise<CryptoKey> {
    let key = this.keyCache.get(slice);
    if (!key) {
      key = this.deriveSliceKey(slice, kid);
      this.keyCache.set(slice, key);
      key.catch(() => this.keyCache.delete(slice));
    }
    return key;
  }

  private async deriveSliceKey(slice: number, kid: string): Promise<CryptoKey> {
    const given = this.byKid.get(kid);
    if (given) return importPrivateJwk(given.privateJwk, "ECDH");
    const node = this.material.seeds.find((s) => {
      const r = subtreeRange(s.depth, s.index);
      return slice >= r.from && slice <= r.to;
    });
    if (!node) throw new OutsideGrantError(`no key or seed in this grant covers slice ${slice}`);
    const seed = fromBase64url(node.seed);
    const leaf = leafFromSubtree(seed, node.depth, node.index, slice);
    try {
      return (await sliceKeyFromLeaf(leaf, slice, this.grant.keyVersion)).privateKey;
    } finally {
      zeroize(seed, leaf);
    }
  }
}

/** Why grant material reaches outside `slices` of version `ver` (a key's slice or kid, a seed's subtree), or null. */
function materialOutside(m: GrantKeys, ver: number, slices: { from: number; to: number }): string | null {
  if (!Array.isArray(m.keys) || !Array.isArray(m.seeds)) return "keys and seeds must be arrays";
  for (const k of m.keys) {
    if (typeof k !== "object" || k === null || !Number.isSafeInteger(k.slice)) return "a key without a slice";
    if (k.slice < slices.from || k.slice > slices.to)
      return `a key for slice ${k.slice}, outside ${slices.from}..${slices.to}`;
    if (k.kid !== `${ver}:${k.slice}`) return `a key whose kid ${String(k.kid)} is not ${ver}:${k.slice}`;
  }
  for (const s of m.seeds) {
    let r: { from: number; to: number };
    try {
      r = subtreeRange(s.depth, s.index);
    } catch {
      return "a malformed seed";
    }
    if (r.from < slices.from || r.to > slices.to)
      return `a seed covering slices ${r.from}..${r.to}, outside ${slices.from}..${slices.to}`;
  }
  return null;
}
