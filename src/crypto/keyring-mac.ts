/**
 * The keyring MAC (SPEC §4 `keyring-mac`): binds each `master_keys` row to the KEK, so a row
 * inserted or edited in SQL (an attacker's public key, a changed sliceSeconds or createdAt) is
 * refused at load and by audit verification. Also: the public key a private JWK really has.
 *
 *   macKey = HKDF-SHA256(ikm = KEK, salt = "chronokms/v2/keyring-mac-salt", info = "chronokms/v2/keyring-mac")   (RFC 5869)
 *   mac    = base64url(HMAC-SHA256(macKey, canonicalJson(["chronokms.keyring.v1", version, x, y, sliceSeconds, createdAtMs, legacyTokenEnvelopes])))
 *
 * `legacyTokenEnvelopes` is covered because turning it back on in SQL would make that version accept
 * v1 token envelopes again (ECDH-ES to a published slice key: forgeable by anyone). It only ever goes
 * true → false, through MasterKeyRepository.clearLegacyTokenEnvelopes, which re-MACs the row.
 *
 * Only the public point (x, y) of the JWK is covered: kid/alg/use are derived from the version.
 */
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { constantTimeEqual, fromBase64url, toBase64url, utf8 } from "./bytes.ts";
import { canonicalJson } from "./canonical-json.ts";
import { type EcPrivateJwk, type EcPublicJwk, importScalar, scalarFromJwk } from "./jwk.ts";
import { zeroize } from "./bytes.ts";

export const KEYRING_MAC_SALT = "chronokms/v2/keyring-mac-salt";
export const KEYRING_MAC_INFO = "chronokms/v2/keyring-mac";
const TAG = "chronokms.keyring.v1";

export interface KeyringFields {
  version: number;
  publicJwk: Pick<EcPublicJwk, "x" | "y">;
  sliceSeconds: number;
  createdAt: Date;
  /** Absent means false (rows created after key separation). */
  legacyTokenEnvelopes?: boolean;
}

/** The 32-byte MAC key derived from the KEK (the `keyring-mac` domain). */
export function keyringMacKey(kek: Uint8Array): Uint8Array {
  return hkdf(sha256, kek, utf8(KEYRING_MAC_SALT), utf8(KEYRING_MAC_INFO), 32);
}

function body(f: KeyringFields): Uint8Array {
  return utf8(
    canonicalJson([
      TAG,
      f.version,
      f.publicJwk.x,
      f.publicJwk.y,
      f.sliceSeconds,
      f.createdAt.getTime(),
      f.legacyTokenEnvelopes === true,
    ]),
  );
}

export function keyringMac(macKey: Uint8Array, f: KeyringFields): string {
  return toBase64url(hmac(sha256, macKey, body(f)));
}

/** Constant-time check; false for a missing or malformed MAC. */
export function verifyKeyringMac(macKey: Uint8Array, f: KeyringFields, mac: string | null | undefined): boolean {
  if (typeof mac !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(mac)) return false;
  return constantTimeEqual(fromBase64url(keyringMac(macKey, f)), fromBase64url(mac));
}

/** The public point of a private JWK, computed from `d` (not read from its x/y members). */
export async function publicPointOf(jwk: EcPrivateJwk): Promise<{ x: string; y: string }> {
  const d = scalarFromJwk(jwk);
  try {
    const { jwk: full } = await importScalar(d, "ECDSA");
    full.d = "";
    return { x: full.x, y: full.y };
  } finally {
    zeroize(d);
  }
}
