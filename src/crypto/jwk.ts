/**
 * P-256 JWK shapes and the WebCrypto bridge from a raw private scalar to JWKs and CryptoKeys.
 * WebCrypto does the point multiplication (~5x faster than @noble/curves here) and validates points.
 */
import { p256 } from "@noble/curves/nist.js";
import { bytesToBigInt, concatBytes, fromBase64url, fromHex, zeroize } from "./bytes.ts";

export interface EcPublicJwk {
  kty: "EC";
  crv: "P-256";
  x: string;
  y: string;
  kid?: string;
  alg?: string;
  use?: string;
}

export interface EcPrivateJwk extends EcPublicJwk {
  d: string;
}

export const P256_ORDER: bigint = p256.Point.CURVE().n;

const B64_32 = /^[A-Za-z0-9_-]{43}$/;

export function isP256PublicJwk(v: unknown): v is EcPublicJwk {
  if (typeof v !== "object" || v === null) return false;
  const j = v as Record<string, unknown>;
  return (
    j.kty === "EC" &&
    j.crv === "P-256" &&
    typeof j.x === "string" &&
    B64_32.test(j.x) &&
    typeof j.y === "string" &&
    B64_32.test(j.y)
  );
}

export function isP256PrivateJwk(v: unknown): v is EcPrivateJwk {
  if (!isP256PublicJwk(v)) return false;
  const d: unknown = (v as unknown as { d?: unknown }).d;
  return typeof d === "string" && B64_32.test(d);
}

/** The public half, with only the members a public JWK should carry (never `d`). */
export function toPublicJwk(jwk: EcPublicJwk): EcPublicJwk {
  const out: EcPublicJwk = { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y };
  if (jwk.kid !== undefined) out.kid = jwk.kid;
  if (jwk.alg !== undefined) out.alg = jwk.alg;
  if (jwk.use !== undefined) out.use = jwk.use;
  return out;
}

/** Decodes `d` and checks 0 < d < n. */
export function scalarFromJwk(jwk: EcPrivateJwk): Uint8Array<ArrayBuffer> {
  const d = fromBase64url(jwk.d);
  const n = bytesToBigInt(d);
  if (d.length !== 32 || n === 0n || n >= P256_ORDER) {
    zeroize(d);
    throw new RangeError("private scalar out of range");
  }
  return d;
}

// RFC 5208 PrivateKeyInfo { v0, id-ecPublicKey + prime256v1, OCTET STRING { RFC 5915 ECPrivateKey
// { 1, OCTET STRING d } } } with the optional public key omitted: WebCrypto computes it.
const PKCS8_P256_PREFIX = fromHex("3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420");

export type EcAlgorithm = "ECDH" | "ECDSA";

/**
 * From a 32-byte scalar: the private CryptoKey and the full private JWK (x, y computed by WebCrypto).
 * The returned key is extractable because its JWK is handed out anyway (grants, wrapping).
 */
export async function importScalar(
  d: Uint8Array,
  alg: EcAlgorithm,
): Promise<{ privateKey: CryptoKey; jwk: EcPrivateJwk }> {
  if (d.length !== 32) throw new RangeError("P-256 scalar must be 32 bytes");
  const der = concatBytes(PKCS8_P256_PREFIX, d);
  try {
    const privateKey = await crypto.subtle.importKey(
      "pkcs8",
      der,
      { name: alg, namedCurve: "P-256" },
      true,
      alg === "ECDH" ? ["deriveBits"] : ["sign"],
    );
    const e = (await crypto.subtle.exportKey("jwk", privateKey)) as JsonWebKey;
    if (typeof e.x !== "string" || typeof e.y !== "string" || typeof e.d !== "string")
      throw new Error("WebCrypto exported an incomplete EC JWK");
    return { privateKey, jwk: { kty: "EC", crv: "P-256", x: e.x, y: e.y, d: e.d } };
  } finally {
    zeroize(der);
  }
}

/** Imports only the members WebCrypto needs, so `alg`/`use`/`key_ops` on stored JWKs cannot conflict. */
export function importPublicJwk(jwk: EcPublicJwk, alg: EcAlgorithm): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "jwk",
    { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y },
    { name: alg, namedCurve: "P-256" },
    true,
    alg === "ECDH" ? [] : ["verify"],
  );
}

export function importPrivateJwk(jwk: EcPrivateJwk, alg: EcAlgorithm): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "jwk",
    { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, d: jwk.d },
    { name: alg, namedCurve: "P-256" },
    false,
    alg === "ECDH" ? ["deriveBits"] : ["sign"],
  );
}
