/**
 * ES256 compact JWS (RFC 7515 §7.1, RFC 7518 §3.4) by the master key over canonical JSON: signed slice
 * public keys that a data source can check offline against the pinned master public key, and generic
 * signed payloads (audit checkpoints).
 */
import { CompactSign, compactVerify } from "jose";
import { CryptoError, CryptoInputError, SignatureVerificationError } from "./errors.ts";
import { fromBase64url, utf8, utf8Decode } from "./bytes.ts";
import { canonicalJson } from "./canonical-json.ts";
import { assertNoDuplicateMembers } from "./strict-json.ts";
import {
  type EcPrivateJwk,
  type EcPublicJwk,
  importPrivateJwk,
  importPublicJwk,
  isP256PublicJwk,
  toPublicJwk,
} from "./jwk.ts";
import { parseKid, sliceKid, sliceRange } from "./slice-keys.ts";

export const SLICE_KEY_TYP = "chronokms-slice-key+json";

/** How long a signed slice statement is valid after it was issued (1 h). */
export const SLICE_STATEMENT_TTL_MS = 60 * 60 * 1000;
/** A statement issued this far in the verifier's future is still accepted (clock skew). */
export const SLICE_STATEMENT_MAX_SKEW_MS = 5 * 60 * 1000;

/**
 * The signed statement about one slice key. `jwk.kid` is "<keyVersion>:<slice>"; [startMs, endMs)
 * is the slice's time range, so a verifier need not redo the arithmetic to know what it may encrypt.
 * (v2) `iat` and `exp` (ms) bound when the statement may be used, and `status` is the version's
 * status when it was signed: a data source encrypts only to an `active`, unexpired statement, so a
 * statement replayed after a rotation is useless once it expires.
 */
export interface SliceKeyStatement {
  keyVersion: number;
  slice: number;
  sliceSeconds: number;
  startMs: number;
  endMs: number;
  jwk: EcPublicJwk;
  status: "active" | "decrypt-only";
  iat: number;
  exp: number;
}

const verificationFailed = () => new SignatureVerificationError();

async function signingKey(key: EcPrivateJwk | CryptoKey): Promise<CryptoKey> {
  return key instanceof CryptoKey ? key : importPrivateJwk(key, "ECDSA");
}

async function verifyingKey(key: EcPublicJwk | CryptoKey): Promise<CryptoKey> {
  return key instanceof CryptoKey ? key : importPublicJwk(key, "ECDSA");
}

/** Compact JWS, header { alg: "ES256", kid, typ }, payload = canonical JSON of `payload`. */
export async function signPayload(
  payload: unknown,
  privateKey: EcPrivateJwk | CryptoKey,
  opts: { kid: string; typ: string },
): Promise<string> {
  return new CompactSign(utf8(canonicalJson(payload)))
    .setProtectedHeader({ alg: "ES256", kid: opts.kid, typ: opts.typ })
    .sign(await signingKey(privateKey));
}

/** Verifies signature, alg and (when given) typ/kid; returns the parsed payload and header kid. */
export async function verifyPayload<T = unknown>(
  jws: string,
  publicKey: EcPublicJwk | CryptoKey,
  opts: { typ?: string; kid?: string } = {},
): Promise<{ payload: T; kid: string | undefined }> {
  try {
    // JSON.parse keeps the last of duplicate members; a header or payload that has any is refused.
    const [h = "", p = ""] = typeof jws === "string" ? jws.split(".") : [];
    assertNoDuplicateMembers(utf8Decode(fromBase64url(h)));
    assertNoDuplicateMembers(utf8Decode(fromBase64url(p)));
    const { payload, protectedHeader } = await compactVerify(jws, await verifyingKey(publicKey), {
      algorithms: ["ES256"],
    });
    if (protectedHeader.crit !== undefined) throw new Error("crit not supported");
    if (opts.typ !== undefined && protectedHeader.typ !== opts.typ) throw new Error("typ mismatch");
    if (opts.kid !== undefined && protectedHeader.kid !== opts.kid) throw new Error("kid mismatch");
    return { payload: JSON.parse(utf8Decode(payload)) as T, kid: protectedHeader.kid };
  } catch (e) {
    if (e instanceof CryptoError) throw e;
    throw verificationFailed();
  }
}

/** Signs a slice public key; version and slice come from its kid "<version>:<slice>". */
export async function signSliceKey(
  publicJwk: EcPublicJwk,
  masterPrivateKey: EcPrivateJwk | CryptoKey,
  opts: { sliceSeconds: number; iat: number; ttlMs?: number; status?: SliceKeyStatement["status"] },
): Promise<string> {
  const ttl = opts.ttlMs ?? SLICE_STATEMENT_TTL_MS;
  if (!Number.isSafeInteger(opts.iat) || opts.iat < 0 || !Number.isSafeInteger(ttl) || ttl <= 0)
    throw new CryptoInputError("iat and ttlMs must be positive integers (ms)");
  const k = publicJwk.kid === undefined ? null : parseKid(publicJwk.kid);
  if (!k) throw new CryptoInputError('slice public JWK needs kid "<version>:<slice>"');
  const { startMs, endMs } = sliceRange(k.slice, opts.sliceSeconds);
  const statement: SliceKeyStatement = {
    keyVersion: k.version,
    slice: k.slice,
    sliceSeconds: opts.sliceSeconds,
    startMs,
    endMs,
    jwk: { ...toPublicJwk(publicJwk), alg: "ECDH-ES", use: "enc" },
    status: opts.status ?? "active",
    iat: opts.iat,
    exp: opts.iat + ttl,
  };
  return signPayload(statement, masterPrivateKey, { kid: String(k.version), typ: SLICE_KEY_TYP });
}

/**
 * Verifies a signed slice key against the master public key and checks the statement is internally
 * consistent (header kid = keyVersion, jwk.kid, time range, iat < exp, no private member) and matches
 * `expected`. With `expected.now` it must also be valid then: issued no later than now + skew, and
 * not expired. A statement without `iat`/`exp` (v1) is refused.
 */
export async function verifySliceKey(
  jws: string,
  masterPublicKey: EcPublicJwk | CryptoKey,
  expected: { version?: number; slice?: number; sliceSeconds?: number; now?: number } = {},
): Promise<SliceKeyStatement> {
  const { payload, kid } = await verifyPayload<Record<string, unknown>>(jws, masterPublicKey, { typ: SLICE_KEY_TYP });
  const s = payload as Partial<SliceKeyStatement> & Record<string, unknown>;
  const ok =
    typeof s.keyVersion === "number" &&
    typeof s.slice === "number" &&
    typeof s.sliceSeconds === "number" &&
    kid === String(s.keyVersion) &&
    isP256PublicJwk(s.jwk) &&
    !("d" in (s.jwk as object)) &&
    s.jwk.kid === sliceKid(s.keyVersion, s.slice) &&
    parseKid(s.jwk.kid) !== null &&
    (expected.version === undefined || expected.version === s.keyVersion) &&
    (expected.slice === undefined || expected.slice === s.slice) &&
    (expected.sliceSeconds === undefined || expected.sliceSeconds === s.sliceSeconds) &&
    (s.status === "active" || s.status === "decrypt-only") &&
    Number.isSafeInteger(s.iat) &&
    Number.isSafeInteger(s.exp) &&
    s.iat! >= 0 &&
    s.exp! > s.iat!;
  if (!ok) throw verificationFailed();
  if (expected.now !== undefined) {
    if (s.iat! > expected.now + SLICE_STATEMENT_MAX_SKEW_MS)
      throw new SignatureVerificationError(
        `slice key statement issued in the future (${new Date(s.iat!).toISOString()}); check the clock`,
      );
    if (expected.now >= s.exp!)
      throw new SignatureVerificationError(`slice key statement expired at ${new Date(s.exp!).toISOString()}`);
  }
  let range: { startMs: number; endMs: number };
  try {
    range = sliceRange(s.slice!, s.sliceSeconds!);
  } catch {
    throw verificationFailed();
  }
  if (range.startMs !== s.startMs || range.endMs !== s.endMs) throw verificationFailed();
  return s as SliceKeyStatement;
}

/** The header of a compact JWS without verifying it (to pick the master key version by kid). */
export function readJwsKid(jws: string): string | undefined {
  try {
    const h = JSON.parse(utf8Decode(fromBase64url(jws.split(".", 1)[0] ?? ""))) as { kid?: unknown };
    return typeof h.kid === "string" ? h.kid : undefined;
  } catch {
    return undefined;
  }
}

export const KEY_ENDORSEMENT_TYP = "chronokms-key-endorsement+json";

/**
 * A master key version's statement that a later version is genuine: signed by version `endorser`
 * (header kid = endorser) over the later version's public signing JWK, its version, createdAt and
 * slice length. A verifier that pins the endorser's key can trust the endorsed one; the JWKS alone
 * is unsigned and proves nothing.
 */
export interface KeyEndorsement {
  endorser: number;
  version: number;
  jwk: EcPublicJwk;
  /** ISO 8601 creation time of the endorsed version. */
  createdAt: string;
  sliceSeconds: number;
}

export async function signKeyEndorsement(
  e: KeyEndorsement,
  endorserPrivateKey: EcPrivateJwk | CryptoKey,
): Promise<string> {
  if (
    !(Number.isSafeInteger(e.endorser) && Number.isSafeInteger(e.version) && e.version > e.endorser && e.endorser > 0)
  )
    throw new CryptoInputError("an endorsement is by an older version of a newer one");
  const payload: KeyEndorsement = {
    endorser: e.endorser,
    version: e.version,
    jwk: { ...toPublicJwk(e.jwk), kid: String(e.version), alg: "ES256", use: "sig" },
    createdAt: e.createdAt,
    sliceSeconds: e.sliceSeconds,
  };
  return signPayload(payload, endorserPrivateKey, { kid: String(e.endorser), typ: KEY_ENDORSEMENT_TYP });
}

/** Verifies an endorsement against the endorser's (pinned) public key; the payload must be consistent. */
export async function verifyKeyEndorsement(
  jws: string,
  endorserPublicKey: EcPublicJwk | CryptoKey,
  expected: { endorser: number },
): Promise<KeyEndorsement> {
  const { payload, kid } = await verifyPayload<Record<string, unknown>>(jws, endorserPublicKey, {
    typ: KEY_ENDORSEMENT_TYP,
    kid: String(expected.endorser),
  });
  const e = payload as Partial<KeyEndorsement>;
  const ok =
    kid === String(expected.endorser) &&
    e.endorser === expected.endorser &&
    Number.isSafeInteger(e.version) &&
    e.version! > expected.endorser &&
    isP256PublicJwk(e.jwk) &&
    !("d" in (e.jwk as object)) &&
    e.jwk.kid === String(e.version) &&
    typeof e.createdAt === "string" &&
    Number.isSafeInteger(e.sliceSeconds) &&
    e.sliceSeconds! > 0;
  if (!ok) throw verificationFailed();
  return e as KeyEndorsement;
}
