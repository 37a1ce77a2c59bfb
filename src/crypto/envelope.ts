/**
 * The time-slice envelope: an ECDH-ES + A256GCM compact JWE (ecdh-es.ts) to a slice public key
 * whose protected header { alg, enc, kid, ts, ctx, epk } is the AAD (RFC 7516 §5.1 step 14). The
 * service seals and opens with it (and opens legacy v1 token values), the SDK's DataSource and
 * DataViewer too, in browsers as well. Every failure to open is the one DecryptionFailedError.
 */
import { utf8Decode, zeroize } from "./bytes.ts";
import { openEcdhEs, readProtectedHeader, sealEcdhEs } from "./ecdh-es.ts";
import { CryptoInputError, DecryptionFailedError } from "./errors.ts";
import type { EcPrivateJwk, EcPublicJwk } from "./jwk.ts";
import { parseKid, sliceIndex } from "./slice-keys.ts";

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

export interface EncryptEnvelopeOptions {
  /** The slice public key: a JWK, or an already imported ECDH CryptoKey (faster). */
  publicKey: EcPublicJwk | CryptoKey;
  kid: string;
  ts: number;
  ctx: string;
  /** When given, `kid`'s slice must be the slice of `ts`. */
  sliceSeconds?: number;
}

export interface DecryptEnvelopeOptions {
  /** The slice private key: a JWK, or an already imported ECDH CryptoKey (faster). */
  privateKey: EcPrivateJwk | CryptoKey;
  expectedCtx: string;
  expectedKid?: string;
  /** When given, the header's slice must be the slice of its ts. */
  sliceSeconds?: number;
}

function checkHeaderValues(kid: string, ts: number, ctx: string, sliceSeconds?: number) {
  const k = parseKid(kid);
  if (!k) throw new CryptoInputError('kid must be "<version>:<slice>"');
  if (!Number.isSafeInteger(ts) || ts < 0) throw new CryptoInputError("ts must be a non-negative integer (ms)");
  if (typeof ctx !== "string" || ctx.length === 0 || ctx.length > MAX_CTX_LENGTH)
    throw new CryptoInputError(`ctx must be a non-empty string of at most ${MAX_CTX_LENGTH} characters`);
  if (sliceSeconds !== undefined && sliceIndex(ts, sliceSeconds) !== k.slice)
    throw new CryptoInputError("kid names a different slice than ts");
  return k;
}

/** An envelope's header members as ours: only known members, a valid kid, ts and ctx. Throws otherwise. */
function envelopeHeaderOf(r: Record<string, unknown>): EnvelopeHeader {
  for (const key of Object.keys(r)) if (!ALLOWED_HEADER.has(key)) throw new Error(`unexpected header member ${key}`);
  if (typeof r.kid !== "string" || typeof r.ctx !== "string" || typeof r.ts !== "number")
    throw new Error("missing kid/ts/ctx");
  const { version, slice } = checkHeaderValues(r.kid, r.ts, r.ctx);
  return { kid: r.kid, version, slice, ts: r.ts, ctx: r.ctx };
}

export async function encryptEnvelope(plaintext: Uint8Array | string, opts: EncryptEnvelopeOptions): Promise<string> {
  checkHeaderValues(opts.kid, opts.ts, opts.ctx, opts.sliceSeconds);
  return sealEcdhEs(plaintext, opts.publicKey, { kid: opts.kid, ts: opts.ts, ctx: opts.ctx });
}

/** The validated header, without decrypting: tells the caller which version/slice key to use. */
export function readEnvelopeHeader(jwe: string): EnvelopeHeader {
  try {
    return envelopeHeaderOf(readProtectedHeader(typeof jwe === "string" ? (jwe.split(".", 1)[0] ?? "") : "").members);
  } catch (e) {
    throw new DecryptionFailedError(e);
  }
}

/** Opens an envelope only under the caller's expectations (ctx, and kid and slice when given). */
export async function decryptEnvelope(jwe: string, opts: DecryptEnvelopeOptions): Promise<Uint8Array> {
  const { plaintext } = await openEcdhEs(jwe, opts.privateKey, (members) => {
    const h = envelopeHeaderOf(members);
    if (h.ctx !== opts.expectedCtx) throw new Error("ctx mismatch");
    if (opts.expectedKid !== undefined && h.kid !== opts.expectedKid) throw new Error("kid mismatch");
    if (opts.sliceSeconds !== undefined && sliceIndex(h.ts, opts.sliceSeconds) !== h.slice)
      throw new Error("ts outside kid's slice");
  });
  return plaintext;
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
