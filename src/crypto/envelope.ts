/**
 * The time-slice envelope on node:crypto (native and synchronous in Bun and Node), for the service;
 * the format is envelope-format.ts. jose cost ~1.7x raw WebCrypto ECDH+AES here and our WebCrypto
 * version (envelope-web.ts, which the SDK uses so it runs in browsers too) ~1.5x, mostly async
 * hops; this one beats the raw WebCrypto baseline. Tests prove interop with jose and between the two.
 */
import {
  type KeyObject,
  KeyObject as NodeKeyObject,
  createCipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
} from "node:crypto";
import { openA256Gcm } from "./aes-gcm.ts";
import { concatBytes, u32be, utf8, utf8Decode, zeroize } from "./bytes.ts";
import {
  ALG,
  ENC,
  IV_BYTES,
  KEY_BITS,
  OUR_OTHER_INFO,
  TAG_BYTES,
  checkHeaderValues,
  otherInfoOf,
  parseExpected,
} from "./envelope-format.ts";
import { DecryptionFailedError } from "./errors.ts";
import type { EcPrivateJwk, EcPublicJwk } from "./jwk.ts";

export { type EnvelopeHeader, readEnvelopeHeader } from "./envelope-format.ts";

/**
 * Concat KDF, NIST SP 800-56A §5.8.1 as profiled by RFC 7518 §4.6.2: for each 32-byte round,
 * SHA-256(counter || Z || len||AlgorithmID || len||apu || len||apv || keydatalen).
 */
export function concatKdf(
  z: Uint8Array,
  keyBits: number,
  algorithmId: string,
  apu: Uint8Array = new Uint8Array(0),
  apv: Uint8Array = new Uint8Array(0),
): Uint8Array<ArrayBuffer> {
  const otherInfo =
    apu.length === 0 && apv.length === 0 && keyBits === KEY_BITS && algorithmId === ENC
      ? OUR_OTHER_INFO
      : otherInfoOf(keyBits, algorithmId, apu, apv);
  const rounds = Math.ceil(keyBits / 256);
  const out = new Uint8Array(rounds * 32);
  for (let i = 0; i < rounds; i++) {
    // node:crypto's native SHA-256: ~5x faster than @noble/hashes here, and z is never copied.
    const digest = createHash("sha256")
      .update(u32be(i + 1))
      .update(z)
      .update(otherInfo)
      .digest();
    out.set(digest, i * 32);
    zeroize(digest);
  }
  const key = out.slice(0, keyBits / 8);
  zeroize(out);
  return key;
}

/** Encoding only (decoding stays on the strict decoder): native, and canonical by construction. */
function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64url");
}

function toPublicKeyObject(key: EcPublicJwk | CryptoKey | KeyObject): KeyObject {
  if (key instanceof CryptoKey) return KeyObjectFrom(key);
  if ("kty" in key) return createPublicKey({ key: { kty: "EC", crv: "P-256", x: key.x, y: key.y }, format: "jwk" });
  return key;
}

function toPrivateKeyObject(key: EcPrivateJwk | CryptoKey | KeyObject): KeyObject {
  if (key instanceof CryptoKey) return KeyObjectFrom(key);
  if ("kty" in key)
    return createPrivateKey({ key: { kty: "EC", crv: "P-256", x: key.x, y: key.y, d: key.d }, format: "jwk" });
  return key;
}

function KeyObjectFrom(key: CryptoKey): KeyObject {
  if (key.algorithm.name !== "ECDH" || (key.algorithm as EcKeyAlgorithm).namedCurve !== "P-256")
    throw new TypeError("expected a P-256 ECDH key");
  return NodeKeyObject.from(key);
}

export interface EncryptEnvelopeOptions {
  /** The slice public key: a JWK, or an already imported ECDH CryptoKey (faster). */
  publicKey: EcPublicJwk | CryptoKey | KeyObject;
  kid: string;
  ts: number;
  ctx: string;
  /** When given, `kid`'s slice must be the slice of `ts`. */
  sliceSeconds?: number;
}

export async function encryptEnvelope(plaintext: Uint8Array | string, opts: EncryptEnvelopeOptions): Promise<string> {
  checkHeaderValues(opts.kid, opts.ts, opts.ctx, opts.sliceSeconds);
  return sealEcdhEs(plaintext, opts.publicKey, { kid: opts.kid, ts: opts.ts, ctx: opts.ctx });
}

/**
 * The one ECDH-ES + A256GCM compact JWE sealer (timeslice envelopes, sealed grants): a fresh
 * ephemeral P-256 key, Concat KDF without apu/apv, protected header `{alg, enc, ...header, epk}`
 * as the AAD. Any standard JOSE library opens it.
 */
export function sealEcdhEs(
  plaintext: Uint8Array | string,
  recipientKey: EcPublicJwk | CryptoKey | KeyObject,
  header: Record<string, unknown>,
): string {
  for (const k of ["alg", "enc", "epk"]) if (k in header) throw new TypeError(`the sealer sets ${k} itself`);
  const recipient = toPublicKeyObject(recipientKey);
  const eph = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const e = eph.publicKey.export({ format: "jwk" });
  const epk = { kty: "EC" as const, crv: "P-256" as const, x: e.x!, y: e.y! };
  const z = diffieHellman({ privateKey: eph.privateKey, publicKey: recipient });
  const cek = concatKdf(z, KEY_BITS, ENC);
  zeroize(z);
  const protectedHeader = b64(utf8(JSON.stringify({ alg: ALG, enc: ENC, ...header, epk })));
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const pt = typeof plaintext === "string" ? utf8(plaintext) : plaintext;
  const cipher = createCipheriv("aes-256-gcm", cek, iv, { authTagLength: TAG_BYTES });
  zeroize(cek);
  cipher.setAAD(utf8(protectedHeader));
  const ct = concatBytes(cipher.update(pt), cipher.final());
  if (typeof plaintext === "string") zeroize(pt);
  return `${protectedHeader}..${b64(iv)}.${b64(ct)}.${b64(cipher.getAuthTag())}`;
}

export interface DecryptEnvelopeOptions {
  /** The slice private key: a JWK, or an already imported ECDH CryptoKey (faster). */
  privateKey: EcPrivateJwk | CryptoKey | KeyObject;
  expectedCtx: string;
  expectedKid?: string;
  /** When given, the header's slice must be the slice of its ts. */
  sliceSeconds?: number;
}

/** Any failure at all (format, header, context, key, tag) is the same DecryptionFailedError. */
export async function decryptEnvelope(jwe: string, opts: DecryptEnvelopeOptions): Promise<Uint8Array> {
  try {
    const env = parseExpected(jwe, opts);
    const privateKey = toPrivateKeyObject(opts.privateKey);
    // createPublicKey refuses points that are not on P-256 (invalid-curve attacks).
    const epk = toPublicKeyObject(env.epk);
    const z = diffieHellman({ privateKey, publicKey: epk });
    const cek = concatKdf(z, KEY_BITS, ENC, env.apu, env.apv);
    zeroize(z);
    try {
      return openA256Gcm(cek, env, env.ciphertext);
    } finally {
      zeroize(cek);
    }
  } catch (e) {
    throw new DecryptionFailedError(e);
  }
}

export async function decryptEnvelopeToString(jwe: string, opts: DecryptEnvelopeOptions): Promise<string> {
  const pt = await decryptEnvelope(jwe, opts);
  try {
    return utf8Decode(pt);
  } catch (e) {
    throw new DecryptionFailedError(e);
  } finally {
    zeroize(pt);
  }
}
