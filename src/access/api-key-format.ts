/**
 * The API key format `ckms_<keyId>_<secret>` and its stored hash. Pure (no I/O), so the
 * bootstrap check, scripts and tests share exactly the code the verifier uses.
 */
import { createHmac } from "node:crypto";
import { concatBytes, fromBase64url, toBase64url, utf8, zeroize } from "../crypto/bytes.ts";

export const API_KEY_PREFIX = "ckms";
/** keyId: 16 lowercase base32 characters (80 bits): public, unique, never contains "_". */
export const KEY_ID_PATTERN = /^[a-z2-7]{16}$/;
const SECRET_BYTES = 32;
const API_KEY_PATTERN = /^ckms_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$/;

/**
 * HMAC key of the stored secret hash: a fixed domain label, not a server secret. The secret is
 * 256 random bits, so neither a slow hash nor a pepper adds anything; a pepper taken from the KEK
 * would break every API key at KEK rotation. Changing this label invalidates every stored key.
 */
export const API_KEY_HASH_LABEL = "chronokms/v1/api-key-secret";
const HASH_KEY = utf8(API_KEY_HASH_LABEL);

export const API_KEY_HOWTO = `make one with: bun -e 'import { generateApiKey } from "./src/access/api-key-format.ts"; console.log(generateApiKey().apiKey)'`;

export interface ParsedApiKey {
  keyId: string;
  secret: Uint8Array;
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

export function generateKeyId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = "";
  for (const b of bytes) out += BASE32[b & 31];
  return out;
}

/** A fresh key: the full string is shown to its owner once; only `secretHash` is stored. */
export function generateApiKey(keyId = generateKeyId()): { keyId: string; apiKey: string; secretHash: string } {
  const secret = crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
  const apiKey = `${API_KEY_PREFIX}_${keyId}_${toBase64url(secret)}`;
  const secretHash = hashSecret(keyId, secret);
  zeroize(secret);
  return { keyId, apiKey, secretHash };
}

/** Null for anything that is not a well-formed key (wrong prefix, lengths, non-canonical base64url). */
export function parseApiKey(value: string): ParsedApiKey | null {
  const m = API_KEY_PATTERN.exec(value);
  if (!m) return null;
  try {
    const secret = fromBase64url(m[2]!);
    if (secret.length !== SECRET_BYTES) return null;
    return { keyId: m[1]!, secret };
  } catch {
    return null;
  }
}

/**
 * HMAC-SHA256(label, keyId || 0x00 || secret) as base64url (RFC 2104). The keyId is bound in, so
 * a hash copied onto another key's row does not verify that key's secret.
 */
export function hashSecret(keyId: string, secret: Uint8Array): string {
  const msg = concatBytes(utf8(keyId), new Uint8Array(1), secret);
  try {
    // Native: it runs on every authenticated request (the principal cache is keyed by the hash),
    // where the pure-JS HMAC cost several µs.
    return toBase64url(createHmac("sha256", HASH_KEY).update(msg).digest());
  } finally {
    zeroize(msg);
  }
}
