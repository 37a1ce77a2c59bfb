/**
 * The time-slice envelope's format, shared by its two implementations (envelope.ts on node:crypto
 * for the service, envelope-web.ts on WebCrypto for the SDK in browsers): compact JWE with ECDH-ES
 * (RFC 7518 §4.6) and A256GCM (§5.3) to a slice public key; protected header
 * { alg, enc, kid, ts, ctx, epk } is the AAD (RFC 7516 §5.1 step 14). Parsing only, no keys.
 */
import { CryptoInputError, DecryptionFailedError } from "./errors.ts";
import { GCM_IV_BYTES, GCM_TAG_BYTES, splitDirectJwe } from "./compact-jwe.ts";
import { concatBytes, fromBase64url, u32be, utf8, utf8Decode } from "./bytes.ts";
import { type EcPublicJwk, isP256PublicJwk } from "./jwk.ts";
import { parseKid, sliceIndex } from "./slice-keys.ts";
import { assertNoDuplicateMembers } from "./strict-json.ts";

export { GCM_IV_BYTES as IV_BYTES, GCM_TAG_BYTES as TAG_BYTES };

export const ALG = "ECDH-ES";
export const ENC = "A256GCM";
export const KEY_BITS = 256;
/** Header members we write or tolerate from other JOSE libraries; anything else (e.g. `crit`, `zip`) is refused. */
const ALLOWED_HEADER = new Set(["alg", "enc", "kid", "ts", "ctx", "epk", "apu", "apv", "typ", "cty"]);
const MAX_CTX_LENGTH = 1024;

export interface EnvelopeHeader {
  kid: string;
  version: number;
  slice: number;
  ts: number;
  ctx: string;
}

/** Concat KDF OtherInfo (NIST SP 800-56A §5.8.1 as profiled by RFC 7518 §4.6.2). */
export function otherInfoOf(
  keyBits: number,
  algorithmId: string,
  apu: Uint8Array,
  apv: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const alg = utf8(algorithmId);
  return concatBytes(u32be(alg.length), alg, u32be(apu.length), apu, u32be(apv.length), apv, u32be(keyBits));
}

/** The KDF's OtherInfo for our own envelopes (A256GCM, no apu/apv) is a constant. */
export const OUR_OTHER_INFO = otherInfoOf(KEY_BITS, ENC, new Uint8Array(0), new Uint8Array(0));

/** The protected header's JSON, members in the order we always write them. */
export function headerJson(kid: string, ts: number, ctx: string, epk: EcPublicJwk): string {
  return JSON.stringify({ alg: ALG, enc: ENC, kid, ts, ctx, epk: { kty: "EC", crv: "P-256", x: epk.x, y: epk.y } });
}

export function checkHeaderValues(
  kid: string,
  ts: number,
  ctx: string,
  sliceSeconds?: number,
): { version: number; slice: number } {
  const k = parseKid(kid);
  if (!k) throw new CryptoInputError('kid must be "<version>:<slice>"');
  if (!Number.isSafeInteger(ts) || ts < 0) throw new CryptoInputError("ts must be a non-negative integer (ms)");
  if (typeof ctx !== "string" || ctx.length === 0 || ctx.length > MAX_CTX_LENGTH)
    throw new CryptoInputError(`ctx must be a non-empty string of at most ${MAX_CTX_LENGTH} characters`);
  if (sliceSeconds !== undefined && sliceIndex(ts, sliceSeconds) !== k.slice)
    throw new CryptoInputError("kid names a different slice than ts");
  return k;
}

export interface ParsedEnvelope extends EnvelopeHeader {
  headerB64: string;
  epk: EcPublicJwk;
  apu?: Uint8Array;
  apv?: Uint8Array;
  iv: Uint8Array<ArrayBuffer>;
  ciphertext: Uint8Array<ArrayBuffer>;
  tag: Uint8Array<ArrayBuffer>;
}

/** Throws a plain Error on anything unexpected; callers turn it into the one generic failure. */
function parseHeader(headerB64: string): Omit<ParsedEnvelope, "headerB64" | "iv" | "ciphertext" | "tag"> {
  const text = utf8Decode(fromBase64url(headerB64));
  assertNoDuplicateMembers(text); // RFC 7516 §4: refuse, never last-wins
  const h: unknown = JSON.parse(text);
  if (typeof h !== "object" || h === null || Array.isArray(h)) throw new Error("header is not an object");
  const r = h as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!ALLOWED_HEADER.has(key)) throw new Error(`unexpected header member ${key}`);
  if (r.alg !== ALG || r.enc !== ENC) throw new Error("unexpected alg/enc");
  if (typeof r.kid !== "string" || typeof r.ctx !== "string" || typeof r.ts !== "number")
    throw new Error("missing kid/ts/ctx");
  const { version, slice } = checkHeaderValues(r.kid, r.ts, r.ctx);
  if (!isP256PublicJwk(r.epk)) throw new Error("bad epk");
  const out: Omit<ParsedEnvelope, "headerB64" | "iv" | "ciphertext" | "tag"> = {
    kid: r.kid,
    version,
    slice,
    ts: r.ts,
    ctx: r.ctx,
    epk: r.epk,
  };
  for (const p of ["apu", "apv"] as const) {
    const v = r[p];
    if (v === undefined) continue;
    if (typeof v !== "string") throw new Error(`bad ${p}`);
    out[p] = fromBase64url(v);
  }
  return out;
}

export function parseEnvelope(jwe: string): ParsedEnvelope {
  const { headerB64, iv, ciphertextB64, tag } = splitDirectJwe(jwe);
  return { ...parseHeader(headerB64), headerB64, iv, ciphertext: fromBase64url(ciphertextB64), tag };
}

/** The validated header, without decrypting: tells the caller which version/slice key to use. */
export function readEnvelopeHeader(jwe: string): EnvelopeHeader {
  try {
    const { kid, version, slice, ts, ctx } = parseHeader(typeof jwe === "string" ? (jwe.split(".", 1)[0] ?? "") : "");
    return { kid, version, slice, ts, ctx };
  } catch (e) {
    throw new DecryptionFailedError(e);
  }
}

/** An envelope the caller opens only under its own expectations; a plain Error (the one failure) otherwise. */
export function parseExpected(
  jwe: string,
  opts: { expectedCtx: string; expectedKid?: string; sliceSeconds?: number },
): ParsedEnvelope {
  const env = parseEnvelope(jwe);
  if (env.ctx !== opts.expectedCtx) throw new Error("ctx mismatch");
  if (opts.expectedKid !== undefined && env.kid !== opts.expectedKid) throw new Error("kid mismatch");
  if (opts.sliceSeconds !== undefined && sliceIndex(env.ts, opts.sliceSeconds) !== env.slice)
    throw new Error("ts outside kid's slice");
  return env;
}
