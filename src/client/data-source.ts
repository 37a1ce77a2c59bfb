/**
 * DataSource: encrypts time-stamped data with public keys only. It fetches each slice's public
 * key from the service and accepts it only if its signature verifies against a trusted master
 * public key, the statement is unexpired and `active`, its version is not lower than the highest
 * version this source has seen (so a statement of a rotated-out version cannot be replayed to it),
 * and it was issued no more than the statement lifetime before the newest statement seen (a check
 * that does not depend on the device clock).
 *
 * Trusted keys are the ones pinned out of band, plus later versions reached through endorsements
 * (GET /v1/keys/endorsements: a JWS by a trusted version over the newer public key). The JWKS is
 * unsigned and never trusted by itself; a pinned kid is never replaced.
 */
import { encryptEnvelope } from "../crypto/envelope.ts";
import { sliceIndex } from "../crypto/slice-keys.ts";
import {
  readJwsKid,
  SLICE_STATEMENT_TTL_MS,
  verifyKeyEndorsement,
  verifySliceKey,
  type SliceKeyStatement,
} from "../crypto/sign.ts";
import { LruCache } from "../crypto/lru.ts";
import type { EcPublicJwk } from "../crypto/jwk.ts";
import type { ChronoKmsClient } from "./api.ts";
import { UntrustedKeyError } from "./errors.ts";

export interface DataSourceOptions {
  /** `keyEndorsements` is needed to follow a rotation to a version that is not pinned. */
  client: Pick<ChronoKmsClient, "slicePublicKey"> & Partial<Pick<ChronoKmsClient, "keyEndorsements">>;
  /** Pinned master public keys (JWKs with `kid` = key version), e.g. saved from /.well-known/jwks.json at install time. */
  masterKeys: EcPublicJwk[];
  /**
   * Statements of versions below this are refused from the start: pass the `highestVersion` you
   * persisted last run, so a restarted device cannot be rolled back to an older version.
   */
  minVersion?: number;
  /**
   * A statement signed by an unknown version newer than any trusted one makes the source fetch the
   * endorsements at most once per this interval (default 60 s), so forged kids cannot make it
   * fetch on every encrypt.
   */
  rotationCheckIntervalMs?: number;
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
  /** Trusted master keys by kid: pinned ones and endorsed ones. Never overwritten. */
  private readonly trusted = new Map<string, EcPublicJwk>();
  /** Slice length of endorsed versions (signed by a trusted key). */
  private readonly endorsedSliceSeconds = new Map<number, number>();
  private readonly cache = new LruCache<number, { statement: SliceKeyStatement; at: number }>(4096);
  private sliceSeconds: number | undefined;
  /** The highest key version of any statement accepted so far (or minVersion); lower ones are refused. */
  private highest: number;
  /** The newest `iat` of any accepted statement; one issued more than a lifetime before it is refused. */
  private newestIat = 0;
  private readonly ttl: number;
  private readonly checkInterval: number;
  private readonly now: () => number;
  private lastRotationCheck = -Infinity;
  private rotationCheck: Promise<void> | undefined;

  constructor(private readonly opts: DataSourceOptions) {
    for (const k of opts.masterKeys) {
      if (!k.kid || !/^[1-9][0-9]{0,8}$/.test(String(k.kid)))
        throw new TypeError("every pinned master key needs its kid (the key version)");
      const had = this.trusted.get(String(k.kid));
      if (had && (had.x !== k.x || had.y !== k.y))
        throw new TypeError(`two different master keys pinned as kid ${k.kid}`);
      this.trusted.set(String(k.kid), k);
    }
    if (this.trusted.size === 0) throw new TypeError("pin at least one master public key");
    const min = opts.minVersion ?? 0;
    if (!Number.isSafeInteger(min) || min < 0) throw new TypeError("minVersion must be a non-negative integer");
    this.highest = min;
    this.ttl = opts.cacheTtlMs ?? 5 * 60_000;
    this.checkInterval = opts.rotationCheckIntervalMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** The highest master key version this source has accepted a statement of (or minVersion); persist it and pass it back as `minVersion`. */
  get highestVersion(): number {
    return this.highest;
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
    if (
      hit &&
      now - hit.at < this.ttl &&
      now >= hit.at &&
      now < hit.statement.exp - EXPIRY_MARGIN_MS &&
      hit.statement.iat > this.newestIat - SLICE_STATEMENT_TTL_MS + EXPIRY_MARGIN_MS &&
      hit.statement.keyVersion >= this.highest
    )
      return hit.statement;
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

  private maxTrustedVersion(): number {
    let m = 0;
    for (const k of this.trusted.keys()) m = Math.max(m, Number(k));
    return m;
  }

  /** Fetches the endorsements at most once per interval (shared by concurrent callers) and trusts what a trusted key vouches for. */
  private followRotations(): Promise<void> {
    const client = this.opts.client;
    if (!client.keyEndorsements) return Promise.resolve();
    if (this.rotationCheck) return this.rotationCheck;
    const now = this.now();
    if (now - this.lastRotationCheck < this.checkInterval && now >= this.lastRotationCheck) return Promise.resolve();
    this.lastRotationCheck = now;
    this.rotationCheck = (async () => {
      let list: Array<{ endorser: number; version: number; signature: string }>;
      try {
        list = (await client.keyEndorsements!()).endorsements;
      } catch {
        return; // the statement stays untrusted; retried after the interval
      }
      if (!Array.isArray(list)) return;
      // Walk the chain from the trusted keys: repeat while a pass adds a version.
      for (let added = true; added; ) {
        added = false;
        for (const e of list) {
          if (
            typeof e !== "object" ||
            e === null ||
            !Number.isSafeInteger(e.endorser) ||
            !Number.isSafeInteger(e.version)
          )
            continue;
          const by = this.trusted.get(String(e.endorser));
          if (!by || this.trusted.has(String(e.version))) continue;
          try {
            const v = await verifyKeyEndorsement(String(e.signature), by, { endorser: e.endorser });
            if (v.version !== e.version || this.trusted.has(String(v.version))) continue;
            this.trusted.set(String(v.version), v.jwk);
            this.endorsedSliceSeconds.set(v.version, v.sliceSeconds);
            added = true;
          } catch {
            // Not signed by the trusted key: ignored.
          }
        }
      }
    })().finally(() => {
      this.rotationCheck = undefined;
    });
    return this.rotationCheck;
  }

  private async fetchVerified(slice: number | "current"): Promise<SliceKeyStatement> {
    const res = await this.opts.client.slicePublicKey(slice);
    const kid = readJwsKid(res.signature);
    const version = kid !== undefined && /^[1-9][0-9]{0,8}$/.test(kid) ? Number(kid) : undefined;
    if (version === undefined) throw new UntrustedKeyError("slice key statement names no master key version");
    if (version < this.highest) {
      throw new UntrustedKeyError(
        `slice key statement of master key version ${version}, older than version ${this.highest} already seen (a replayed or rolled-back statement)`,
      );
    }
    // The kid is unverified: it may only make us look for endorsements (rate-limited), never trust a key.
    if (!this.trusted.has(kid!) && version > this.maxTrustedVersion()) await this.followRotations();
    const master = this.trusted.get(kid!);
    if (!master)
      throw new UntrustedKeyError(
        `slice key signed by master key version ${kid}, which is neither pinned nor endorsed by a pinned version`,
      );
    let statement: SliceKeyStatement;
    try {
      const sliceSeconds = this.endorsedSliceSeconds.get(version);
      statement = await verifySliceKey(res.signature, master, {
        ...(slice === "current" ? {} : { slice }),
        ...(sliceSeconds ? { sliceSeconds } : {}),
        version,
        now: this.now(),
      });
    } catch (e) {
      const why = e instanceof Error && /expired|future/.test(e.message) ? `: ${e.message}` : "";
      throw new UntrustedKeyError(`slice ${slice}: statement does not verify against trusted master key ${kid}${why}`);
    }
    if (statement.status !== "active")
      throw new UntrustedKeyError(
        `slice ${statement.slice}: master key version ${version} is ${statement.status}; data is encrypted only to the active version`,
      );
    if (statement.iat <= this.newestIat - SLICE_STATEMENT_TTL_MS) {
      throw new UntrustedKeyError(
        `slice ${statement.slice}: statement issued ${new Date(statement.iat).toISOString()}, more than its lifetime before the newest statement seen (${new Date(this.newestIat).toISOString()}): a replayed statement`,
      );
    }
    this.newestIat = Math.max(this.newestIat, statement.iat);
    if (version > this.highest) {
      // Follow the rotation: statements of older versions are no longer used or accepted.
      this.highest = version;
      this.cache.clear();
    }
    return statement;
  }
}
