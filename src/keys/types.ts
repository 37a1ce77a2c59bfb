/** The key-service contract used by grants, tokens, audit checkpoints and the HTTP layer. */
import type { EcPublicJwk } from "../crypto/jwk.ts";
import type { SliceKeyDeriver } from "../crypto/slice-keys.ts";

export type KeyStatus = "active" | "decrypt-only" | "retired";

export interface KeyVersion {
  version: number;
  status: KeyStatus;
  sliceSeconds: number;
  publicJwk: EcPublicJwk;
  /** Slice keys of this version (cached). Absent for retired versions. */
  deriver: SliceKeyDeriver;
}

export interface SealedValue {
  jwe: string;
  version: number;
}

export interface TokenResealRequest {
  jwe: string;
  ctx: string;
  /** The ctx a v1 envelope of this value must carry; absent where the store never held v1 values. */
  legacyCtx?: string;
  newCtx: string;
}

export interface KeyService {
  /** The active version; notices a rotation made by another process without a restart. */
  active(): Promise<KeyVersion>;
  /** A usable (active or decrypt-only) version; KeyUnavailableError if unknown or retired. */
  get(version: number): Promise<KeyVersion>;
  /** Envelope-encrypts to the active version's slice of `ts` (ms) with context `ctx`. */
  seal(plaintext: string | Uint8Array, opts: { ctx: string; ts: number }): Promise<SealedValue>;
  /** Decrypts an envelope whose `ctx` must equal `expectedCtx`; DecryptionFailedError otherwise. */
  open(jwe: string, opts: { expectedCtx: string }): Promise<Uint8Array>;
  /**
   * Token domain (SPEC v2 §4): seals an OAuth token field as a v2 token envelope (compact JWE dir +
   * A256GCM, kid "tok:<version>") under the active version's token root with `ctx`. The token root
   * never leaves the key service (except to its own reseal workers).
   */
  sealToken(plaintext: string | Uint8Array, opts: { ctx: string }): Promise<SealedValue>;
  /**
   * Opens a token field. A v2 envelope must carry exactly `ctx`; a v1 envelope (ECDH-ES to a slice
   * key, written before key separation) is accepted only under a version that existed then
   * (`legacyTokenEnvelopes`) and must carry `legacyCtx`. With `keyVersion` (the row's), an
   * envelope naming another version fails too. DecryptionFailedError otherwise.
   */
  openToken(jwe: string, opts: { ctx: string; legacyCtx: string; keyVersion?: number }): Promise<Uint8Array>;
  /**
   * Rotation's batch open + seal: opens each token envelope (as `openToken` does) and seals it
   * again as a v2 envelope under the active version with `newCtx`. All results share `version`;
   * null where a value does not open. May run the crypto on worker threads.
   */
  resealTokens(items: ReadonlyArray<TokenResealRequest>): Promise<{ version: number; jwes: Array<string | null> }>;
  /**
   * Ends v1 token-envelope acceptance (`legacyTokenEnvelopes`) once no store holds a v1 value,
   * counted and cleared in one transaction; returns the versions changed. Called by rewrap runs.
   */
  endLegacyTokenEnvelopes?(): Promise<number[]>;
  /** ES256 JWS by the active master key (kid = version), e.g. audit checkpoints. */
  sign(payload: unknown, typ: string): Promise<string>;
  /** Master public keys that are not retired (for /.well-known/jwks.json). */
  jwks(): Promise<EcPublicJwk[]>;
}
