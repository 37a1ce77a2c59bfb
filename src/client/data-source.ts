/**
 * DataSource: encrypts time-stamped data with public keys only. It fetches each slice's public
 * key from the service and accepts it only if its signature verifies against a master public
 * key pinned out of band (so a compromised network path cannot substitute its own key).
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

export class DataSource {
  private readonly pinned = new Map<string, EcPublicJwk>();
  private readonly cache = new LruCache<number, { statement: SliceKeyStatement; at: number }>(4096);
  private sliceSeconds: number | undefined;
  private readonly ttl: number;
  private readonly now: () => number;

  constructor(private readonly opts: DataSourceOptions) {
    for (const k of opts.masterKeys) {
      if (!k.kid) throw new TypeError("every pinned master key needs its kid (the key version)");
      this.pinned.set(String(k.kid), k);
    }
    if (this.pinned.size === 0) throw new TypeError("pin at least one master public key");
    this.ttl = opts.cacheTtlMs ?? 5 * 60_000;
    this.now = opts.now ?? Date.now;
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
    // The slice length is learned from a signed statement, never assumed.
    this.sliceSeconds ??= (await this.fetchVerified(0)).sliceSeconds;
    let slice = sliceIndex(ts, this.sliceSeconds);
    const hit = this.cache.get(slice);
    if (hit && this.now() - hit.at < this.ttl) return hit.statement;
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

  private async fetchVerified(slice: number): Promise<SliceKeyStatement> {
    const res = await this.opts.client.slicePublicKey(slice);
    const kid = readJwsKid(res.signature);
    const master = kid === undefined ? undefined : this.pinned.get(kid);
    if (!master) throw new UntrustedKeyError(`slice key signed by master key version ${kid ?? "?"}, which is not pinned`);
    let statement: SliceKeyStatement;
    try {
      statement = await verifySliceKey(res.signature, master, { slice });
    } catch {
      throw new UntrustedKeyError(`slice ${slice}: signature does not verify against pinned master key ${kid}`);
    }
    return statement;
  }
}
