/**
 * What the key service signs for the public: slice key statements (a slice's public key, signed by
 * its version, for data sources that encrypt) and endorsements (an older version's signature over a
 * newer public key). Cached; the active version's slices around now are signed ahead of time.
 */
import {
  type EcPublicJwk,
  LruCache,
  MAX_SLICE,
  SLICE_STATEMENT_TTL_MS,
  leafSeed,
  signKeyEndorsement,
  signSliceKey,
  sliceIndex,
  sliceKid,
  slicePublicJwk,
  sliceRange,
  zeroize,
} from "../crypto/index.ts";
import type { Clock } from "../clock.ts";
import { KeyUnavailableError, NotFoundError, ValidationError } from "../errors.ts";
import type { LiveKeyring, Loaded } from "./keyring.ts";
import { WARM_SLICES, statementWindow, stillFresh } from "./slice-statements.ts";
import type { KeyStatus } from "./types.ts";

export interface SignedSliceKey {
  version: number;
  slice: number;
  kid: string;
  sliceSeconds: number;
  /** The version's status when signed; data sources encrypt only to `active`. */
  status: "active" | "decrypt-only";
  /** ISO 8601 start (inclusive) and end (exclusive) of the slice. */
  from: string;
  to: string;
  /** ISO 8601 validity of the signed statement (its `iat`/`exp`). */
  issuedAt: string;
  expiresAt: string;
  publicJwk: EcPublicJwk;
  /** Compact JWS (ES256, kid = version) over the slice key statement; see src/crypto/sign.ts. */
  signature: string;
}

export interface KeyEndorsementView {
  endorser: number;
  version: number;
  /** Compact JWS (ES256, kid = endorser, typ chronokms-key-endorsement+json); see src/crypto/sign.ts. */
  signature: string;
}

interface StatementEntry {
  p: Promise<SignedSliceKey>;
  iat: number;
  status: KeyStatus;
}

type Signing = Loaded & { kv: NonNullable<Loaded["kv"]>; signer: CryptoKey };

export class SliceStatements {
  // Big enough for a whole signing window of 60-s slices (~1500), so a sweep cannot evict the slices around now.
  private readonly signedSlices = new LruCache<string, StatementEntry>(4096);
  /** Endorsements signed so far ("endorser>version"); few versions exist, so this stays small. */
  private readonly endorsed = new Map<string, Promise<string>>();
  /** The active version's statements around now (WARM_SLICES), apart from the LRU so no sweep evicts them. */
  private warm = new Map<string, StatementEntry>();
  private warmedAt = -Infinity;
  private warmedVersion = 0;

  constructor(
    private readonly ring: LiveKeyring,
    private readonly clock: Clock,
  ) {}

  async signedSliceKey(
    slice: number | "current",
    version?: number,
    opts: { charge?: () => void } = {},
  ): Promise<SignedSliceKey> {
    const v = version ?? (await this.ring.activeLoaded()).row.version;
    const l = await this.ring.lookup(v);
    if (!l) throw new NotFoundError(`master key version ${v}`);
    if (!l.kv || !l.signer || l.row.status === "retired")
      throw new KeyUnavailableError(`master key version ${v} is retired`);
    const signing = l as Signing;
    const status = l.row.status;
    const now = this.clock.now();
    const s = slice === "current" ? sliceIndex(now, l.kv.sliceSeconds) : slice;
    if (!Number.isSafeInteger(s) || s < 0 || s > MAX_SLICE)
      throw new ValidationError(`slice must be an integer from 0 to ${MAX_SLICE}`);
    sliceRange(s, l.kv.sliceSeconds); // ValidationError past the representable time range
    const w = statementWindow(status, l.kv.sliceSeconds, now, {
      createdAt: l.row.createdAt.getTime(),
      rotatedAt: l.row.rotatedAt?.getTime() ?? null,
    });
    if (!w || s < w.from || s > w.to) {
      throw new ValidationError(
        `slice ${s} of key version ${v} (${status}) is outside the slices signed now` +
          (w
            ? ` (${w.from}..${w.to}: ${status === "active" ? "24 h back to 1 h ahead" : "ended slices of the last 24 h within its active period"})`
            : " (none: a decrypt-only version is signed only for ended slices of its active period)"),
        { window: w },
      );
    }
    if (status === "active") this.warmStatements(signing, now);
    const usable = (e: StatementEntry | undefined) => e !== undefined && e.status === status && stillFresh(e.iat, now);
    const warm = this.warm.get(`${v}:${s}`);
    if (usable(warm)) return warm!.p;
    const hit = this.signedSlices.get(`${v}:${s}`);
    if (usable(hit)) return hit!.p;
    opts.charge?.(); // a lookup that has to sign counts against the caller's budget
    return this.signStatement(signing, s, now);
  }

  async endorsements(): Promise<KeyEndorsementView[]> {
    await this.ring.fresh();
    const live = this.ring
      .loaded()
      .filter((l) => l.signer && l.row.status !== "retired")
      .sort((a, b) => a.row.version - b.row.version);
    const out: Array<Promise<KeyEndorsementView>> = [];
    for (const [i, by] of live.entries()) {
      for (const of of live.slice(i + 1)) {
        const key = `${by.row.version}>${of.row.version}`;
        let p = this.endorsed.get(key);
        if (!p) {
          p = signKeyEndorsement(
            {
              endorser: by.row.version,
              version: of.row.version,
              jwk: of.row.publicJwk,
              createdAt: of.row.createdAt.toISOString(),
              sliceSeconds: of.row.sliceSeconds,
            },
            by.signer!,
          );
          this.endorsed.set(key, p);
          p.catch(() => this.endorsed.delete(key));
        }
        out.push(p.then((signature) => ({ endorser: by.row.version, version: of.row.version, signature })));
      }
    }
    return Promise.all(out);
  }

  /** Signs the active version's statements around now ahead of time, at most every 10 s. */
  private warmStatements(l: Signing, now: number): void {
    if (now - this.warmedAt < 10_000 && this.warmedVersion === l.row.version) return;
    this.warmedAt = now;
    this.warmedVersion = l.row.version;
    const cur = sliceIndex(now, l.kv.sliceSeconds);
    const warm = new Map<string, StatementEntry>();
    for (let s = Math.max(0, cur - WARM_SLICES.before); s <= Math.min(MAX_SLICE, cur + WARM_SLICES.after); s++) {
      const key = `${l.row.version}:${s}`;
      let hit = this.warm.get(key) ?? this.signedSlices.get(key);
      if (!hit || hit.status !== l.row.status || !stillFresh(hit.iat, now)) {
        this.signStatement(l, s, now).catch(() => {});
        hit = this.signedSlices.get(key);
      }
      if (hit) warm.set(key, hit);
    }
    this.warm = warm;
  }

  private signStatement(l: Signing, slice: number, now: number): Promise<SignedSliceKey> {
    const { kv, signer } = l;
    const v = kv.version;
    const status = l.row.status as "active" | "decrypt-only";
    const key = `${v}:${slice}`;
    const p = (async (): Promise<SignedSliceKey> => {
      const range = sliceRange(slice, kv.sliceSeconds);
      // Derived outside the deriver's cache: public lookups of arbitrary slices must not evict the hot ones.
      const leaf = leafSeed(kv.deriver.rootSeed, slice);
      const kid = sliceKid(v, slice);
      let publicJwk: EcPublicJwk;
      try {
        publicJwk = await slicePublicJwk(leaf, kid);
      } finally {
        zeroize(leaf);
      }
      const signature = await signSliceKey(publicJwk, signer, { sliceSeconds: kv.sliceSeconds, iat: now, status });
      return {
        version: v,
        slice,
        kid,
        sliceSeconds: kv.sliceSeconds,
        status,
        from: new Date(range.startMs).toISOString(),
        to: new Date(range.endMs).toISOString(),
        issuedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + SLICE_STATEMENT_TTL_MS).toISOString(),
        publicJwk,
        signature,
      };
    })();
    const entry: StatementEntry = { p, iat: now, status };
    this.signedSlices.set(key, entry);
    p.catch(() => {
      if (this.signedSlices.get(key) === entry) this.signedSlices.delete(key);
      if (this.warm.get(key) === entry) this.warm.delete(key);
    });
    return p;
  }

  clear(): void {
    this.signedSlices.clear();
    this.warm.clear();
    this.endorsed.clear();
  }
}
