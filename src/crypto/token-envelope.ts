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
import { createCipheriv, hkdfSync } from "node:crypto";
import { CryptoInputError, DecryptionFailedError } from "./errors.ts";
import { canonicalJson } from "./canonical-json.ts";
import { openA256Gcm } from "./aes-gcm.ts";
import { GCM_IV_BYTES as IV_BYTES, GCM_TAG_BYTES as TAG_BYTES, splitDirectJwe } from "./compact-jwe.ts";
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
  return canonicalJson([TOKEN_CTX_LABEL, integration, userId, field, rowVersion]);
}

export function tokenKid(version: number): string {
  return `tok:${version}`;
}

/** RFC 5869 HKDF-SHA256 → the 32-byte AES-256-GCM key of one envelope. */
export function tokenDek(root: Uint8Array, salt: Uint8Array, ctx: string): Uint8Array<ArrayBuffer> {
  if (root.length !== 32) throw new CryptoInputError("token root must be 32 bytes");
  if (salt.length !== SALT_BYTES) throw new CryptoInputError(`salt must be ${SALT_BYTES} bytes`);
  return new Uint8Array(hkdfSync("sha256", root, salt, utf8(ctx), DEK_BYTES));
}

function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64url");
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
  const salt = opts.salt ?? crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const iv = opts.iv ?? crypto.getRandomValues(new Uint8Array(IV_BYTES));
  if (iv.length !== IV_BYTES) throw new CryptoInputError(`iv must be ${IV_BYTES} bytes`);
  const header = b64(
    utf8(JSON.stringify({ alg: ALG, enc: ENC, kid: tokenKid(opts.version), salt: b64(salt), ctx: opts.ctx })),
  );
  const dek = tokenDek(opts.root, salt, opts.ctx);
  const pt = typeof plaintext === "string" ? utf8(plaintext) : plaintext;
  try {
    const cipher = createCipheriv("aes-256-gcm", dek, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(utf8(header));
    const ct = concatBytes(cipher.update(pt), cipher.final());
    return `${header}..${b64(iv)}.${b64(ct)}.${b64(cipher.getAuthTag())}`;
  } finally {
    zeroize(dek);
    if (typeof plaintext === "string") zeroize(pt);
  }
}

export interface TokenEnvelopeHeader {
  kid: string;
  version: number;
  salt: Uint8Array<ArrayBuffer>;
  ctx: string;
}

function parseHeader(headerB64: string): TokenEnvelopeHeader {
  const text = utf8Decode(fromBase64url(headerB64));
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
  const version = Number(m[1]);
  if (!Number.isSafeInteger(version)) throw new Error("bad kid");
  const salt = fromBase64url(r.salt);
  if (salt.length !== SALT_BYTES) throw new Error("bad salt");
  if (r.ctx.length === 0 || r.ctx.length > MAX_CTX_LENGTH) throw new Error("bad ctx");
  return { kid: r.kid, version, salt, ctx: r.ctx };
}

/** True when the value is in the v2 token format (by its header; says nothing about authenticity). */
export function isTokenEnvelope(jwe: string): boolean {
  return typeof jwe === "string" && jwe.startsWith(TOKEN_ENVELOPE_PREFIX);
}

/** The validated header without decrypting (which version's root to use); DecryptionFailedError if malformed. */
export function readTokenEnvelopeHeader(jwe: string): TokenEnvelopeHeader {
  try {
    if (typeof jwe !== "string") throw new Error("not a string");
    return parseHeader(jwe.split(".", 1)[0] ?? "");
  } catch (e) {
    throw new DecryptionFailedError(e);
  }
}

/**
 * Opens an envelope whose ctx must equal `expectedCtx` and whose kid must name `root`'s version.
 * Any failure (format, header, ctx, version, tag) is the same DecryptionFailedError.
 */
export function openTokenEnvelope(
  jwe: string,
  opts: { root: Uint8Array; version: number; expectedCtx: string },
): Uint8Array<ArrayBuffer> {
  let dek: Uint8Array | undefined;
  try {
    const parts = splitDirectJwe(jwe);
    const h = parseHeader(parts.headerB64);
    if (h.ctx !== opts.expectedCtx) throw new Error("ctx mismatch");
    if (h.version !== opts.version) throw new Error("version mismatch");
    dek = tokenDek(opts.root, h.salt, h.ctx);
    return openA256Gcm(dek, parts, fromBase64url(parts.ciphertextB64));
  } catch (e) {
    throw new DecryptionFailedError(e);
  } finally {
    zeroize(dek);
  }
}
