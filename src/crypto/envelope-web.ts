/**
 * The time-slice envelope on WebCrypto only, so it runs in browsers as well as Node and Bun: the
 * SDK's implementation (DataSource encrypts, DataViewer decrypts). The format is the service's
 * (envelope-format.ts); envelope.ts is the faster node:crypto implementation the service uses.
 * Every failure to open is the one DecryptionFailedError.
 */
import { concatBytes, toBase64url, u32be, utf8, zeroize } from "./bytes.ts";
import * as format from "./envelope-format.ts";
import { DecryptionFailedError } from "./errors.ts";
import { type EcPrivateJwk, type EcPublicJwk, importPrivateJwk, importPublicJwk } from "./jwk.ts";

export { type EnvelopeHeader, readEnvelopeHeader } from "./envelope-format.ts";

export interface WebEncryptOptions {
  /** The slice public key: a JWK, or an already imported ECDH CryptoKey. */
  publicKey: EcPublicJwk | CryptoKey;
  kid: string;
  ts: number;
  ctx: string;
  /** When given, `kid`'s slice must be the slice of `ts`. */
  sliceSeconds?: number;
}

export interface WebDecryptOptions {
  /** The slice private key: a JWK, or an already imported ECDH CryptoKey. */
  privateKey: EcPrivateJwk | CryptoKey;
  expectedCtx: string;
  expectedKid?: string;
  /** When given, the header's slice must be the slice of its ts. */
  sliceSeconds?: number;
}

const isJwk = <J extends EcPublicJwk>(k: J | CryptoKey): k is J => "kty" in k;

/** Concat KDF (RFC 7518 §4.6.2) for a 256-bit key: one round, SHA-256(1 || Z || OtherInfo). */
async function cekOf(z: Uint8Array, otherInfo: Uint8Array, usage: "encrypt" | "decrypt"): Promise<CryptoKey> {
  const input = concatBytes(u32be(1), z, otherInfo);
  const cek = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  zeroize(input, z);
  try {
    return await crypto.subtle.importKey("raw", cek, "AES-GCM", false, [usage]);
  } finally {
    zeroize(cek);
  }
}

async function agree(privateKey: CryptoKey, publicKey: CryptoKey): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(
    await crypto.subtle.deriveBits({ name: "ECDH", public: publicKey }, privateKey, format.KEY_BITS),
  );
}

export async function encryptEnvelope(plaintext: Uint8Array | string, opts: WebEncryptOptions): Promise<string> {
  format.checkHeaderValues(opts.kid, opts.ts, opts.ctx, opts.sliceSeconds);
  const recipient = isJwk(opts.publicKey) ? await importPublicJwk(opts.publicKey, "ECDH") : opts.publicKey;
  const eph = (await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, [
    "deriveBits",
  ])) as CryptoKeyPair;
  const e = (await crypto.subtle.exportKey("jwk", eph.publicKey)) as JsonWebKey;
  const key = await cekOf(await agree(eph.privateKey, recipient), format.OUR_OTHER_INFO, "encrypt");
  const epk: EcPublicJwk = { kty: "EC", crv: "P-256", x: e.x!, y: e.y! };
  const header = toBase64url(utf8(format.headerJson(opts.kid, opts.ts, opts.ctx, epk)));
  const iv = crypto.getRandomValues(new Uint8Array(format.IV_BYTES));
  const pt = typeof plaintext === "string" ? utf8(plaintext) : plaintext;
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: utf8(header), tagLength: format.TAG_BYTES * 8 },
      key,
      pt as Uint8Array<ArrayBuffer>,
    ),
  );
  if (typeof plaintext === "string") zeroize(pt);
  const ct = sealed.subarray(0, sealed.length - format.TAG_BYTES);
  const tag = sealed.subarray(sealed.length - format.TAG_BYTES);
  return `${header}..${toBase64url(iv)}.${toBase64url(ct)}.${toBase64url(tag)}`;
}

export async function decryptEnvelope(jwe: string, opts: WebDecryptOptions): Promise<Uint8Array> {
  try {
    const env = format.parseExpected(jwe, opts);
    const privateKey = isJwk(opts.privateKey) ? await importPrivateJwk(opts.privateKey, "ECDH") : opts.privateKey;
    // WebCrypto refuses to import a point that is not on P-256 (invalid-curve attacks).
    const epk = await importPublicJwk(env.epk, "ECDH");
    const otherInfo =
      env.apu || env.apv
        ? format.otherInfoOf(format.KEY_BITS, format.ENC, env.apu ?? new Uint8Array(0), env.apv ?? new Uint8Array(0))
        : format.OUR_OTHER_INFO;
    const key = await cekOf(await agree(privateKey, epk), otherInfo, "decrypt");
    const pt = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: env.iv, additionalData: utf8(env.headerB64), tagLength: format.TAG_BYTES * 8 },
      key,
      concatBytes(env.ciphertext, env.tag),
    );
    return new Uint8Array(pt);
  } catch (e) {
    throw new DecryptionFailedError(e);
  }
}
