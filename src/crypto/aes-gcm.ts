/** AES-256-GCM open on node:crypto (synchronous), for the service's token envelope (token-envelope.ts). */
import { createDecipheriv } from "node:crypto";
import { concatBytes, utf8, zeroize } from "./bytes.ts";
import { GCM_TAG_BYTES } from "./compact-jwe.ts";

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
