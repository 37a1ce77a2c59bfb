/**
 * The OAuth token envelope (SPEC v2 §4), the one implementation used by the vault, rotation (also
 * inside reseal workers) and the bench: a compact JWE (RFC 7516 §7.1) with `alg: "dir"` (RFC 7518
 * §4.5) and `enc: "A256GCM"` (§5.3), protected header `{alg, enc, kid: "tok:<version>", salt, ctx}`
 * as the AAD. Its key (DEK) is fresh per seal:
 *   DEK = HKDF-SHA256(ikm = the version's token root, salt = 32 random bytes, info = UTF-8(ctx))  (RFC 5869)
 * and ctx is the canonical JSON array `["chronokms/oauth-token/v2", integration, userId, field, rowVersion]`,
 * which names exactly one row, field and row version (no separator a value could smuggle).
 * Symmetric: opening costs one HKDF and one AES-GCM, no ECDH. Every failure is one DecryptionFailedError.
 */
import { createCipheriv, createDecipheriv, hkdfSync } from "node:crypto";
import { CryptoInputError, DecryptionFailedError } from "./errors.ts";
import { canonicalJson } from "./canonical-json.ts";
import { GCM_IV_BYTES as IV_BYTES, GCM_TAG_BYTES as TAG_BYTES } from "./compact-jwe.ts";
import { assertNoDuplicateMembers } from "./strict-json.ts";
import { concatBytes, fromBase64url, utf8, utf8Decode, zeroize } from "./bytes.ts";

export const TOKEN_CTX_LABEL = "chronokms/oauth-token/v2";
export type TokenField = "access" | "refresh";

const ALG = "dir";
const ENC = "A256GCM";
const SALT_BYTES = 32;
const DEK_BYTES = 32;
const MAX_CTX_LENGTH = 2048;
const HEADER_MEMBERS = ["alg", "enc", "kid", "salt", "ctx"] as const;
const KID_RE = /^tok:(0|[1-9][0-9]{0,15})$/;
/** base64url of `{"alg":"dir",`: how a v2 token envelope begins (we always write `alg` first). */
export const TOKEN_ENVELOPE_PREFIX = "eyJhbGciOiJkaXIiLC";

/** The canonical ctx of one field of one row version. */
export function tokenContext(integration: string, userId: string, field: TokenField, rowVersion: number): string {
  if (!Number.isSafeInteger(rowVersion) || rowVersion < 1)
    throw new CryptoInputError("rowVersion must be a positive integer");
  const value = [TOKEN_CTX_LABEL, integration, userId, field, rowVersion];
  // Of strings and a safe integer, canonical JSON is JSON.stringify's output; anything else
  // takes canonicalJson's checks (which refuse it).
  return typeof integration === "string" && typeof userId === "string" && typeof field === "string"
    ? JSON.stringify(value)
    : canonicalJson(value);
}

export function tokenKid(version: number): string {
  return `tok:${version}`;
}

/** RFC 5869 HKDF-SHA256 → the 32-byte AES-256-GCM key of one envelope. */
export function tokenDek(root: Uint8Array, salt: Uint8Array, ctx: string): Uint8Array<ArrayBuffer> {
  if (root.length !== 32) throw new CryptoInputError("token root must be 32 bytes");
  if (salt.length !== SALT_BYTES) throw new CryptoInputError(`salt must be ${SALT_BYTES} bytes`);
  return new Uint8Array(hkdfSync("sha256", root, salt, ctx, DEK_BYTES)); // a string info is its UTF-8
}

function b64(b: Uint8Array): string {
  return b.toBase64({ alphabet: "base64url", omitPadding: true });
}

export interface SealTokenOptions {
  /** The token root of `version` (never leaves the process). */
  root: Uint8Array;
  version: number;
  ctx: string;
  /** Test vectors only: fixed salt and IV instead of fresh random ones. */
  salt?: Uint8Array;
  iv?: Uint8Array;
}

export function sealTokenEnvelope(plaintext: string | Uint8Array, opts: SealTokenOptions): string {
  if (!Number.isSafeInteger(opts.version) || opts.version < 0)
    throw new CryptoInputError("version must be a non-negative integer");
  if (typeof opts.ctx !== "string" || opts.ctx.length === 0 || opts.ctx.length > MAX_CTX_LENGTH)
    throw new CryptoInputError(`ctx must be 1–${MAX_CTX_LENGTH} characters`);
  // Two draws rather than views of one: a view makes JSC give the array a separate ArrayBuffer
  // object, which cost more than the second draw on the rewrap's path.
  const salt = opts.salt ?? crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const iv = opts.iv ?? crypto.getRandomValues(new Uint8Array(IV_BYTES));
  if (iv.length !== IV_BYTES) throw new CryptoInputError(`iv must be ${IV_BYTES} bytes`);
  // The bytes JSON.stringify gives the object {alg, enc, kid, salt, ctx} (members in this order,
  // which TOKEN_ENVELOPE_PREFIX and the rewrap's SQL prefix test rely on), written directly.
  const json = `{"alg":"${ALG}","enc":"${ENC}","kid":"${tokenKid(opts.version)}","salt":"${b64(salt)}","ctx":${JSON.stringify(opts.ctx)}}`;
  const header = b64(utf8(json));
  const dek = tokenDek(opts.root, salt, opts.ctx);
  const pt = typeof plaintext === "string" ? utf8(plaintext) : plaintext;
  try {
    const cipher = createCipheriv("aes-256-gcm", dek, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(utf8(header)); // ASCII
    const head = cipher.update(pt);
    const tail = cipher.final();
    const ct = tail.length === 0 ? head : Buffer.concat([head, tail]);
    return `${header}..${b64(iv)}.${b64(ct)}.${b64(cipher.getAuthTag())}`;
  } finally {
    zeroize(dek);
    if (typeof plaintext === "string") zeroize(pt);
  }
}

export interface TokenEnvelopeHeader {
  kid: string;
  version: number;
  salt: Uint8Array;
  ctx: string;
}

/** A token envelope split and its header validated once (what `openTokenEnvelope` also accepts). */
export interface ParsedTokenEnvelope extends TokenEnvelopeHeader {
  headerB64: string;
  iv: Uint8Array;
  ciphertext: Uint8Array;
  tag: Uint8Array;
}

// The compact form with an empty Encrypted Key, a 12-byte IV (16 chars) and a 16-byte tag (22 chars,
// the last one canonical: its 4 unused bits zero); the header and ciphertext are checked below.
const JWE_RE = /^([A-Za-z0-9_-]+)\.\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]{21}[AQgw])$/;
// The header exactly as the sealer writes it; anything else (other order, whitespace, escaped
// names…) goes through the general strict parser, which accepts a superset with the same meaning.
const WRITTEN_HEADER =
  /^\{"alg":"dir","enc":"A256GCM","kid":"tok:(0|[1-9][0-9]{0,15})","salt":"([A-Za-z0-9_-]{42}[AEIMQUYcgkosw048])","ctx":("(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*")\}$/;
/** The 6-bit value of each base64url character by char code (-1 outside the alphabet). */
const B64URL_VALUE = (() => {
  const t = new Int8Array(128).fill(-1);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (let i = 0; i < 64; i++) t[alphabet.charCodeAt(i)] = i;
  return t;
})();

/** Throws unless a string already known to be in the url alphabet is canonical base64url (length, last character). */
function assertCanonical(s: string): void {
  const rem = s.length & 3;
  if (rem === 1) throw new Error("invalid base64url length");
  if (rem !== 0 && (B64URL_VALUE[s.charCodeAt(s.length - 1) & 127]! & (rem === 2 ? 15 : 3)) !== 0)
    throw new Error("non-canonical base64url");
}

/** Strict base64url decode of a string already known to be in the url alphabet (so no whitespace or padding). */
function decodeB64(s: string): Uint8Array<ArrayBuffer> {
  assertCanonical(s);
  return Uint8Array.fromBase64(s, { alphabet: "base64url" });
}

function headerText(headerB64: string): string {
  return utf8Decode(decodeB64(headerB64)); // fatal on invalid UTF-8
}

function parseHeader(headerB64: string): TokenEnvelopeHeader {
  const text = headerText(headerB64);
  const fast = WRITTEN_HEADER.exec(text);
  if (fast) {
    const ctx = JSON.parse(fast[3]!) as string;
    const kid = `tok:${fast[1]}`;
    return checked({ kid, version: Number(fast[1]), salt: decodeB64(fast[2]!), ctx });
  }
  assertNoDuplicateMembers(text); // RFC 7516 §4: duplicate header members are refused
  const h: unknown = JSON.parse(text);
  if (typeof h !== "object" || h === null || Array.isArray(h)) throw new Error("header is not an object");
  const r = h as Record<string, unknown>;
  const keys = Object.keys(r);
  if (keys.length !== HEADER_MEMBERS.length || !HEADER_MEMBERS.every((k) => k in r))
    throw new Error("unexpected header members");
  if (r.alg !== ALG || r.enc !== ENC) throw new Error("unexpected alg/enc");
  if (typeof r.kid !== "string" || typeof r.salt !== "string" || typeof r.ctx !== "string")
    throw new Error("bad kid/salt/ctx");
  const m = KID_RE.exec(r.kid);
  if (!m) throw new Error("bad kid");
  return checked({ kid: r.kid, version: Number(m[1]), salt: fromBase64url(r.salt), ctx: r.ctx });
}

function checked(h: TokenEnvelopeHeader): TokenEnvelopeHeader {
  if (!Number.isSafeInteger(h.version)) throw new Error("bad kid");
  if (h.salt.length !== SALT_BYTES) throw new Error("bad salt");
  if (h.ctx.length === 0 || h.ctx.length > MAX_CTX_LENGTH) throw new Error("bad ctx");
  return h;
}

/** True when the value is in the v2 token format (by its header; says nothing about authenticity). */
export function isTokenEnvelope(jwe: string): boolean {
  return typeof jwe === "string" && jwe.startsWith(TOKEN_ENVELOPE_PREFIX);
}

/**
 * Splits an envelope and validates its header without decrypting (which version's root to use);
 * DecryptionFailedError if malformed. Parse once, then hand the result to `openTokenEnvelope`.
 */
export function parseTokenEnvelope(jwe: string): ParsedTokenEnvelope {
  try {
    if (typeof jwe !== "string") throw new Error("not a string");
    const m = JWE_RE.exec(jwe);
    if (!m) throw new Error("not a compact JWE with an empty encrypted key, a 96-bit IV and a 128-bit tag");
    const headerB64 = m[1]!;
    const h = parseHeader(headerB64);
    return {
      kid: h.kid,
      version: h.version,
      salt: h.salt,
      ctx: h.ctx,
      headerB64,
      iv: decodeB64(m[2]!),
      ciphertext: decodeB64(m[3]!),
      tag: decodeB64(m[4]!),
    };
  } catch (e) {
    throw new DecryptionFailedError(e);
  }
}

/** The validated header without decrypting (which version's root to use); DecryptionFailedError if malformed. */
export function readTokenEnvelopeHeader(jwe: string): TokenEnvelopeHeader {
  return parseTokenEnvelope(jwe);
}

/**
 * Opens an envelope (or one `parseTokenEnvelope` split) whose ctx must equal `expectedCtx` and whose
 * kid must name `root`'s version. Any failure (format, header, ctx, version, tag) is the same
 * DecryptionFailedError.
 */
export function openTokenEnvelope(
  jwe: string | ParsedTokenEnvelope,
  opts: { root: Uint8Array; version: number; expectedCtx: string },
): Uint8Array<ArrayBuffer> {
  const p = typeof jwe === "string" ? parseTokenEnvelope(jwe) : jwe;
  let dek: Uint8Array | undefined;
  try {
    if (p.ctx !== opts.expectedCtx) throw new Error("ctx mismatch");
    if (p.version !== opts.version) throw new Error("version mismatch");
    dek = tokenDek(opts.root, p.salt, p.ctx);
    const decipher = createDecipheriv("aes-256-gcm", dek, p.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(utf8(p.headerB64)); // ASCII
    decipher.setAuthTag(p.tag);
    const head = decipher.update(p.ciphertext);
    const tail = decipher.final(); // throws on a bad tag; no plaintext was handed out before
    if (tail.length === 0) return head as Uint8Array<ArrayBuffer>;
    const pt = concatBytes(head, tail);
    zeroize(head, tail);
    return pt;
  } catch (e) {
    throw new DecryptionFailedError(e);
  } finally {
    zeroize(dek);
  }
}
