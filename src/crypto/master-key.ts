/**
 * The master P-256 keypair: generation, and wrapping/unwrapping its private JWK under the KEK as a
 * compact JWE (RFC 7516 §7.1; RFC 7518 §4.4 A256KW + §5.3 A256GCM). The master signs slice keys and
 * audit checkpoints (ES256) and its scalar roots the GGM tree.
 */
import { assertNoDuplicateMembers } from "./strict-json.ts";
import { CompactEncrypt, compactDecrypt } from "jose";
import { DecryptionFailedError, KekMismatchError } from "./errors.ts";
import { constantTimeEqual, fromBase64url, utf8, utf8Decode, zeroize } from "./bytes.ts";
import { KEK_BYTES } from "./kek.ts";
import {
  type EcPrivateJwk,
  type EcPublicJwk,
  importScalar,
  isP256PrivateJwk,
  scalarFromJwk,
  toPublicJwk,
} from "./jwk.ts";

export interface MasterKeyPair {
  publicJwk: EcPublicJwk;
  privateJwk: EcPrivateJwk;
}

/** `kid` (usually the version as a string) is set on both JWKs when given. */
export async function generateMasterKeyPair(opts: { kid?: string } = {}): Promise<MasterKeyPair> {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const e = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey;
  const privateJwk: EcPrivateJwk = { kty: "EC", crv: "P-256", x: e.x!, y: e.y!, d: e.d!, alg: "ES256", use: "sig" };
  if (opts.kid !== undefined) privateJwk.kid = opts.kid;
  if (!isP256PrivateJwk(privateJwk)) throw new Error("WebCrypto produced an invalid P-256 JWK");
  return { publicJwk: toPublicJwk(privateJwk), privateJwk };
}

const WRAP_CTY = "jwk+json";

export async function wrapPrivateJwk(
  privateJwk: EcPrivateJwk,
  kek: Uint8Array,
  opts: { version: number },
): Promise<string> {
  if (kek.length !== KEK_BYTES) throw new RangeError(`KEK must be ${KEK_BYTES} bytes`);
  if (!isP256PrivateJwk(privateJwk)) throw new TypeError("not a P-256 private JWK");
  const plaintext = utf8(JSON.stringify(privateJwk));
  try {
    return await new CompactEncrypt(plaintext)
      .setProtectedHeader({ alg: "A256KW", enc: "A256GCM", kid: String(opts.version), cty: WRAP_CTY })
      .encrypt(kek);
  } finally {
    zeroize(plaintext);
  }
}

/**
 * Unwraps and checks the private JWK (shape, scalar range, and that x/y match d).
 * Throws KekMismatchError when the JWE does not decrypt under this KEK (A256KW's integrity check fails:
 * the caller adds the expected/configured fingerprints), DecryptionFailedError when the stored value is
 * malformed or names another version.
 */
export async function unwrapPrivateJwk(
  jwe: string,
  kek: Uint8Array,
  opts: { version?: number } = {},
): Promise<EcPrivateJwk> {
  const header = readWrapHeader(jwe);
  if (opts.version !== undefined && header.kid !== String(opts.version)) {
    throw new DecryptionFailedError(new Error(`wrapped key is for version ${header.kid}, expected ${opts.version}`));
  }
  let plaintext: Uint8Array;
  try {
    ({ plaintext } = await compactDecrypt(jwe, kek, {
      keyManagementAlgorithms: ["A256KW"],
      contentEncryptionAlgorithms: ["A256GCM"],
    }));
  } catch {
    throw new KekMismatchError(
      "the master private key cannot be unwrapped with the configured KEK (wrong MASTER_KEY_ENCRYPTION_KEY?)",
    );
  }
  let jwk: unknown;
  try {
    jwk = JSON.parse(utf8Decode(plaintext));
  } catch (e) {
    throw new DecryptionFailedError(e);
  } finally {
    zeroize(plaintext);
  }
  if (!isP256PrivateJwk(jwk)) throw new DecryptionFailedError(new Error("wrapped value is not a P-256 private JWK"));
  const d = scalarFromJwk(jwk);
  try {
    const { jwk: derived } = await importScalar(d, "ECDSA");
    if (!constantTimeEqual(utf8(derived.x + derived.y), utf8(jwk.x + jwk.y))) throw new Error("x/y do not match d");
  } catch (e) {
    throw new DecryptionFailedError(e);
  } finally {
    zeroize(d);
  }
  return jwk;
}

function readWrapHeader(jwe: string): { kid: string } {
  try {
    const parts = jwe.split(".");
    if (parts.length !== 5) throw new Error("not a compact JWE");
    const text = utf8Decode(fromBase64url(parts[0]!));
    assertNoDuplicateMembers(text);
    const h = JSON.parse(text) as Record<string, unknown>;
    if (h.alg !== "A256KW" || h.enc !== "A256GCM" || typeof h.kid !== "string")
      throw new Error("unexpected wrap header");
    return { kid: h.kid };
  } catch (e) {
    throw new DecryptionFailedError(e);
  }
}

/** The 32-byte private scalar; the caller zeroizes it after deriving the GGM root. */
export function masterScalar(privateJwk: EcPrivateJwk): Uint8Array<ArrayBuffer> {
  return scalarFromJwk(privateJwk);
}
