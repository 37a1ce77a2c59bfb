/**
 * The parts of a compact JWE (RFC 7516 §7.1) that both of our direct-key envelopes share: ECDH-ES
 * (RFC 7518 §4.6) and `dir` (§4.5) leave the JWE Encrypted Key empty, and both use A256GCM with a
 * 96-bit IV and a 128-bit tag. Throws a plain Error on anything unexpected; each caller turns it
 * into its one generic DecryptionFailedError.
 */
import { createDecipheriv } from "node:crypto";
import { concatBytes, fromBase64url, utf8, zeroize } from "./bytes.ts";

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

/** AES-256-GCM open with the protected header as AAD; throws on a bad tag before any plaintext is returned. */
export function openA256Gcm(
  key: Uint8Array,
  parts: { headerB64: string; iv: Uint8Array; tag: Uint8Array },
  ciphertext: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const decipher = createDecipheriv("aes-256-gcm", key, parts.iv, { authTagLength: GCM_TAG_BYTES });
  decipher.setAAD(utf8(parts.headerB64));
  decipher.setAuthTag(parts.tag);
  const head = decipher.update(ciphertext);
  const tail = decipher.final();
  const pt = concatBytes(head, tail);
  zeroize(head, tail);
  return pt;
}
