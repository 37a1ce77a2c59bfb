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
   * Optional batch form of open + seal, for rotation: opens each envelope (its ctx must equal the
   * given one) and seals it again to the active version with its own ts and ctx. All results share
   * `version`; null where an envelope does not open (retired or unknown version, wrong ctx, bad tag).
   * May run the crypto on worker threads.
   */
  resealMany?(items: ReadonlyArray<{ jwe: string; ctx: string }>): Promise<{ version: number; jwes: Array<string | null> }>;
  /** ES256 JWS by the active master key (kid = version), e.g. audit checkpoints. */
  sign(payload: unknown, typ: string): Promise<string>;
  /** Master public keys that are not retired (for /.well-known/jwks.json). */
  jwks(): Promise<EcPublicJwk[]>;
}
