/**
 * Key domains (SPEC v2 §4): each master key version's private scalar feeds independent
 * HKDF-SHA256 derivations (RFC 5869) with distinct labels, so a key of one domain opens nothing of
 * another:
 *   timeslice  GGM root (ggm.ts `rootSeed`): salt "chronokms/v1/ggm-salt", info "chronokms/v1/ggm-root".
 *              Unchanged from v1 for every version, old and new, so slice keys already published
 *              or handed out in grants stay valid. The only material ever released.
 *   token      root of the OAuth token DEKs: salt "chronokms/v2/key-domains", info
 *              "chronokms/v2/token-root". Never released, never in a response.
 * The labels do not depend on when a version was created: one rule for every version.
 */
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { CryptoInputError } from "./errors.ts";
import { utf8 } from "./bytes.ts";
import { rootSeed } from "./ggm.ts";

export const KEY_DOMAIN_SALT = "chronokms/v2/key-domains";
export const TOKEN_ROOT_INFO = "chronokms/v2/token-root";
export const DOMAIN_KEY_BYTES = 32;

/** The timeslice domain: the GGM root (same bytes as v1). */
export function timesliceRoot(masterScalar: Uint8Array): Uint8Array<ArrayBuffer> {
  return rootSeed(masterScalar);
}

/** The token domain: HKDF-SHA256(ikm = master scalar, salt = KEY_DOMAIN_SALT, info = TOKEN_ROOT_INFO, L = 32). */
export function tokenRoot(masterScalar: Uint8Array): Uint8Array<ArrayBuffer> {
  if (masterScalar.length !== 32) throw new CryptoInputError("master scalar must be 32 bytes");
  return hkdf(sha256, masterScalar, utf8(KEY_DOMAIN_SALT), utf8(TOKEN_ROOT_INFO), DOMAIN_KEY_BYTES);
}
