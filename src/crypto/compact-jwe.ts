/**
 * The parts of a compact JWE (RFC 7516 §7.1) that both of our direct-key envelopes share: ECDH-ES
 * (RFC 7518 §4.6) and `dir` (§4.5) leave the JWE Encrypted Key empty, and both use A256GCM with a
 * 96-bit IV and a 128-bit tag. Throws a plain Error on anything unexpected; each caller turns it
 * into its one generic DecryptionFailedError. No node:crypto here: the SDK's browser build uses it.
 */
import { fromBase64url } from "./bytes.ts";

export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

export interface DirectJweParts {
  headerB64: string;
  iv: Uint8Array<ArrayBuffer>;
  ciphertextB64: string;
  tag: Uint8Array<ArrayBuffer>;
}

/** Splits a compact JWE whose Encrypted Key must be empty; checks the IV and tag lengths. */
export function splitDirectJwe(jwe: string): DirectJweParts {
  if (typeof jwe !== "string") throw new Error("not a string");
  const parts = jwe.split(".");
  if (parts.length !== 5) throw new Error("not a compact JWE");
  const [headerB64, encryptedKey, ivB64, ciphertextB64, tagB64] = parts as [string, string, string, string, string];
  if (encryptedKey !== "") throw new Error("encrypted key must be empty");
  const iv = fromBase64url(ivB64);
  const tag = fromBase64url(tagB64);
  if (iv.length !== GCM_IV_BYTES || tag.length !== GCM_TAG_BYTES) throw new Error("bad iv/tag length");
  return { headerB64, iv, ciphertextB64, tag };
}
