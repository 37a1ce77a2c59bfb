/**
 * The one ECDH-ES (direct key agreement, RFC 7518 §4.6) + A256GCM (§5.3) compact JWE, on WebCrypto
 * so the same code runs in the service (Bun, Node ≥ 20) and in the SDK in browsers. Generic: the
 * caller names the protected header's members when sealing (the sealer adds alg, enc and epk) and
 * checks them when opening. Every envelope kind of this shape builds on it: time-slice envelopes
 * (envelope.ts) and sealed grants. Any standard JOSE library opens what it seals and the other way
 * round (apu/apv honoured). Every failure to open is the one DecryptionFailedError.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, fromBase64url, toBase64url, u32be, utf8, utf8Decode, zeroize } from "./bytes.ts";
import { GCM_IV_BYTES, GCM_TAG_BYTES, splitDirectJwe } from "./compact-jwe.ts";
import { DecryptionFailedError } from "./errors.ts";
import { type EcPrivateJwk, type EcPublicJwk, importPrivateJwk, importPublicJwk, isP256PublicJwk } from "./jwk.ts";
import { assertNoDuplicateMembers } from "./strict-json.ts";

export const ALG = "ECDH-ES";
export const ENC = "A256GCM";
const KEY_BITS = 256;
/** Members only the sealer writes. */
const SEALER_MEMBERS = ["alg", "enc", "epk"];
/** We implement no header extension and no compression: a JWE that needs either is refused, as jose does. */
const REFUSED_MEMBERS = ["crit", "zip"];

/** Concat KDF OtherInfo (NIST SP 800-56A §5.8.1 as profiled by RFC 7518 §4.6.2). */
function otherInfoOf(keyBits: number, algorithmId: string, apu: Uint8Array, apv: Uint8Array): Uint8Array {
  const alg = utf8(algorithmId);
  return concatBytes(u32be(alg.length), alg, u32be(apu.length), apu, u32be(apv.length), apv, u32be(keyBits));
}

const NONE = new Uint8Array(0);
/** The OtherInfo of every JWE we seal (A256GCM, no apu/apv) is a constant. */
const OUR_OTHER_INFO = otherInfoOf(KEY_BITS, ENC, NONE, NONE);

/**
 * Concat KDF (RFC 7518 §4.6.2): for each 32-byte round, SHA-256(counter || Z || OtherInfo).
 * Synchronous SHA-256 (noble) rather than crypto.subtle.digest: one async hop less per envelope.
 */
export function concatKdf(
  z: Uint8Array,
  keyBits: number,
  algorithmId: string,
  apu: Uint8Array = NONE,
  apv: Uint8Array = NONE,
): Uint8Array<ArrayBuffer> {
  const otherInfo =
    apu.length === 0 && apv.length === 0 && keyBits === KEY_BITS && algorithmId === ENC
      ? OUR_OTHER_INFO
      : otherInfoOf(keyBits, algorithmId, apu, apv);
  const rounds = Math.ceil(keyBits / 256);
  const out = new Uint8Array(rounds * 32);
  for (let i = 0; i < rounds; i++) {
    const input = concatBytes(u32be(i + 1), z, otherInfo);
    out.set(sha256(input), i * 32);
    zeroize(input);
  }
  const key = out.slice(0, keyBits / 8);
  zeroize(out);
  return key;
}

/** The CEK as a non-extractable AES-GCM key; Z and the raw CEK are wiped. */
async function cekOf(
  privateKey: CryptoKey,
  publicKey: CryptoKey,
  usage: "encrypt" | "decrypt",
  apu?: Uint8Array,
  apv?: Uint8Array,
): Promise<CryptoKey> {
  const z = new Uint8Array(await crypto.subtle.deriveBits({ name: "ECDH", public: publicKey }, privateKey, KEY_BITS));
  const cek = concatKdf(z, KEY_BITS, ENC, apu, apv);
  zeroize(z);
  try {
    return await crypto.subtle.importKey("raw", cek, "AES-GCM", false, [usage]);
  } finally {
    zeroize(cek);
  }
}

/** An uncompressed P-256 point from a public JWK's coordinates; WebCrypto refuses points off the curve. */
function importPoint(jwk: EcPublicJwk): Promise<CryptoKey> {
  const point = concatBytes(new Uint8Array([4]), fromBase64url(jwk.x), fromBase64url(jwk.y));
  return crypto.subtle.importKey("raw", point, { name: "ECDH", namedCurve: "P-256" }, false, []);
}

const isJwk = <J extends EcPublicJwk>(k: J | CryptoKey): k is J => "kty" in k;

/**
 * Seals `plaintext` to a P-256 key: a fresh ephemeral key, the protected header
 * `{ alg, enc, ...header, epk }` (in that member order) as the AAD, Concat KDF without apu/apv.
 */
export async function sealEcdhEs(
  plaintext: Uint8Array | string,
  recipientKey: EcPublicJwk | CryptoKey,
  header: Record<string, unknown>,
): Promise<string> {
  for (const k of [...SEALER_MEMBERS, ...REFUSED_MEMBERS])
    if (k in header) throw new TypeError(`the sealer ${SEALER_MEMBERS.includes(k) ? "sets" : "refuses"} ${k}`);
  const recipient = isJwk(recipientKey) ? await importPublicJwk(recipientKey, "ECDH") : recipientKey;
  const eph = (await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, [
    "deriveBits",
  ])) as CryptoKeyPair;
  const [point, key] = await Promise.all([
    crypto.subtle.exportKey("raw", eph.publicKey),
    cekOf(eph.privateKey, recipient, "encrypt"),
  ]);
  const xy = new Uint8Array(point);
  const epk = { kty: "EC", crv: "P-256", x: toBase64url(xy.subarray(1, 33)), y: toBase64url(xy.subarray(33)) };
  const headerB64 = toBase64url(utf8(JSON.stringify({ alg: ALG, enc: ENC, ...header, epk })));
  const iv = crypto.getRandomValues(new Uint8Array(GCM_IV_BYTES));
  const pt = typeof plaintext === "string" ? utf8(plaintext) : plaintext;
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: utf8(headerB64), tagLength: GCM_TAG_BYTES * 8 },
      key,
      pt as Uint8Array<ArrayBuffer>,
    ),
  );
  if (typeof plaintext === "string") zeroize(pt);
  const ct = sealed.subarray(0, sealed.length - GCM_TAG_BYTES);
  const tag = sealed.subarray(sealed.length - GCM_TAG_BYTES);
  return `${headerB64}..${toBase64url(iv)}.${toBase64url(ct)}.${toBase64url(tag)}`;
}

export interface EcdhEsHeader {
  /** Every member of the protected header, as parsed (alg, enc and epk included). */
  members: Record<string, unknown>;
  epk: EcPublicJwk;
  apu?: Uint8Array;
  apv?: Uint8Array;
}

/**
 * The protected header of an ECDH-ES + A256GCM JWE, strictly: an object without duplicate members
 * (RFC 7516 §4: refuse, never last-wins), our alg and enc, a well-formed P-256 epk, apu/apv as
 * base64url, no crit or zip. Throws a plain Error; not authenticated until the JWE opens.
 */
export function readProtectedHeader(headerB64: string): EcdhEsHeader {
  const text = utf8Decode(fromBase64url(headerB64));
  assertNoDuplicateMembers(text);
  const h: unknown = JSON.parse(text);
  if (typeof h !== "object" || h === null || Array.isArray(h)) throw new Error("header is not an object");
  const members = h as Record<string, unknown>;
  if (members.alg !== ALG || members.enc !== ENC) throw new Error("unexpected alg/enc");
  for (const k of REFUSED_MEMBERS) if (k in members) throw new Error(`unsupported header member ${k}`);
  if (!isP256PublicJwk(members.epk)) throw new Error("bad epk");
  const out: EcdhEsHeader = { members, epk: members.epk };
  for (const p of ["apu", "apv"] as const) {
    const v = members[p];
    if (v === undefined) continue;
    if (typeof v !== "string") throw new Error(`bad ${p}`);
    out[p] = fromBase64url(v);
  }
  return out;
}

/**
 * Opens a JWE sealed to `privateKey`. `check` sees the parsed protected header before any key
 * agreement and throws to refuse it (the caller's expectations: typ, kid, ctx…). Returns the
 * plaintext and the now authenticated header members; any failure is the one DecryptionFailedError.
 */
export async function openEcdhEs(
  jwe: string,
  privateKey: EcPrivateJwk | CryptoKey,
  check?: (members: Record<string, unknown>) => void,
): Promise<{ plaintext: Uint8Array<ArrayBuffer>; header: Record<string, unknown> }> {
  try {
    const { headerB64, iv, ciphertextB64, tag } = splitDirectJwe(jwe);
    const h = readProtectedHeader(headerB64);
    check?.(h.members);
    const ciphertext = fromBase64url(ciphertextB64);
    const [priv, epk] = await Promise.all([
      isJwk(privateKey) ? importPrivateJwk(privateKey, "ECDH") : privateKey,
      importPoint(h.epk),
    ]);
    const key = await cekOf(priv, epk, "decrypt", h.apu, h.apv);
    const plaintext = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv, additionalData: utf8(headerB64), tagLength: GCM_TAG_BYTES * 8 },
      key,
      concatBytes(ciphertext, tag),
    );
    return { plaintext: new Uint8Array(plaintext), header: h.members };
  } catch (e) {
    throw new DecryptionFailedError(e);
  }
}
