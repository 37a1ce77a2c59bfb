/**
 * DataSource: encrypts time-stamped data with public keys only. It fetches each slice's public
 * key from the service and accepts it only if its signature verifies against a master public
 * key pinned out of band (so a compromised network path cannot substitute its own key), the
 * statement is unexpired and `active`, and its version is not lower than the highest version
 * this source has seen (so a statement of a rotated-out version cannot be replayed to it).
 */
import { encryptEnvelope } from "../crypto/envelope.ts";
import { sliceIndex } from "../crypto/slice-keys.ts";
import { readJwsKid, verifySliceKey, type SliceKeyStatement } from "../crypto/sign.ts";
import { LruCache } from "../crypto/lru.ts";
import type { EcPublicJwk } from "../crypto/jwk.ts";
import type { ChronoKmsClient } from "./api.ts";
import { UntrustedKeyError } from "./errors.ts";

export interface DataSourceOptions {
  client: Pick<ChronoKmsClient, "slicePublicKey">;
  /** Pinned master public keys (JWKs with `kid` = key version), e.g. saved from /.well-known/jwks.json. */
  masterKeys: EcPublicJwk[];
  /**
   * Called when a statement is signed by a version newer than any pinned one (a rotation): return
   * the master public keys you trust now (e.g. the JWKS fetched over an authenticated channel).
   * Without it, a rotation to an unpinned version is refused with UntrustedKeyError.
   */
  refreshMasterKeys?: () => Promise<EcPublicJwk[]>;
  /** How long a verified slice key is reused before asking again (a rotation switches versions). */
  cacheTtlMs?: number;
  now?: () => number;
}

export interface EncryptedRecord {
  /** Compact JWE (ECDH-ES + A256GCM) with protected kid, ts and ctx. */
  jwe: string;
  kid: string;
  ts: number;
}

/** A cached statement is not used within this long of its expiry. */
const EXPIRY_MARGIN_MS = 60_000;

export class DataSource {
  private readonly pinned = new Map<string, EcPublicJwk>();
  private readonly cache = new LruCache<number, { statement: SliceKeyStatement; at: number }>(4096);
  private sliceSeconds: number | undefined;
  /** The highest key version of any statement accepted so far; lower ones are refused. */
  private highest = 0;
  private readonly ttl: number;
  private readonly now: () => number;

  constructor(private readonly opts: DataSourceOptions) {
    this.pin(opts.masterKeys);
    if (this.pinned.size === 0) throw new TypeError("pin at least one master public key");
    this.ttl = opts.cacheTtlMs ?? 5 * 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** The highest master key version this source has accepted a statement of (0 before the first). */
  get highestVersion(): number {
    return this.highest;
  }

  private pin(keys: EcPublicJwk[]): void {
    for (const k of keys) {
      if (!k.kid) throw new TypeError("every pinned master key needs its kid (the key version)");
      this.pinned.set(String(k.kid), k);
    }
  }

  /** Encrypts `data` recorded at `timestamp` (ms) under context `ctx` (e.g. `sensor:42`). */
  async encrypt(data: string | Uint8Array, opts: { ctx: string; timestamp?: number }): Promise<EncryptedRecord> {
    const ts = opts.timestamp ?? this.now();
    const statement = await this.statementFor(ts);
    const jwe = await encryptEnvelope(data, {
      publicKey: statement.jwk,
      kid: statement.jwk.kid!,
      ts,
      ctx: opts.ctx,
      sliceSeconds: statement.sliceSeconds,
    });
    return { jwe, kid: statement.jwk.kid!, ts };
  }

  private async statementFor(ts: number): Promise<SliceKeyStatement> {
    // The slice length is learned from a signed statement (of the slice of now), never assumed.
    this.sliceSeconds ??= (await this.fetchVerified("current")).sliceSeconds;
    let slice = sliceIndex(ts, this.sliceSeconds);
    const hit = this.cache.get(slice);
    const now = this.now();
    if (hit && now - hit.at < this.ttl && now < hit.statement.exp - EXPIRY_MARGIN_MS && hit.statement.keyVersion >= this.highest) return hit.statement;
    let statement = await this.fetchVerified(slice);
    if (statement.sliceSeconds !== this.sliceSeconds) {
      // A rotation changed the slice length: recompute the slice under the new length.
      this.sliceSeconds = statement.sliceSeconds;
      this.cache.clear();
      slice = sliceIndex(ts, this.sliceSeconds);
      statement = await this.fetchVerified(slice);
    }
    this.cache.set(slice, { statement, at: this.now() });
    return statement;
  }

  private async fetchVerified(slice: number | "current"): Promise<SliceKeyStatement> {
    const res = await this.opts.client.slicePublicKey(slice);
    const kid = readJwsKid(res.signature);
    const version = kid !== undefined && /^[1-9][0-9]{0,8}$/.test(kid) ? Number(kid) : undefined;
    if (version === undefined) throw new UntrustedKeyError("slice key statement names no master key version");
    if (version < this.highest) {
      throw new UntrustedKeyError(`slice key statement of master key version ${version}, older than version ${this.highest} already seen (a replayed or rolled-back statement)`);
    }
    let master = this.pinned.get(kid!);
    if (!master && this.opts.refreshMasterKeys && version > Math.max(this.highest, ...[...this.pinned.keys()].map(Number))) {
      // A rotation: the service signs with a version we have not pinned yet.
      this.pin(await this.opts.refreshMasterKeys());
      master = this.pinned.get(kid!);
    }
    if (!master) throw new UntrustedKeyError(`slice key signed by master key version ${kid}, which is not pinned`);
    let statement: SliceKeyStatement;
    try {
      statement = await verifySliceKey(res.signature, master, { ...(slice === "current" ? {} : { slice }), version, now: this.now() });
    } catch (e) {
      const why = e instanceof Error && /expired|future/.test(e.message) ? `: ${e.message}` : "";
      throw new UntrustedKeyError(`slice ${slice}: statement does not verify against pinned master key ${kid}${why}`);
    }
    if (statement.status !== "active") throw new UntrustedKeyError(`slice ${statement.slice}: master key version ${version} is ${statement.status}; data is encrypted only to the active version`);
    if (version > this.highest) {
      // Follow the rotation: statements of older versions are no longer used or accepted.
      this.highest = version;
      this.cache.clear();
    }
    return statement;
  }
}
