/**
 * Byte helpers for the crypto layer: strict hex/base64url codecs, constant-time comparison, zeroing.
 * Plain JS so the client SDK runs unchanged on Node and browsers; decoders are strict (canonical only)
 * so that two different strings never decode to the same bytes.
 */

const HEX = "0123456789abcdef";
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64URL_LOOKUP = (() => {
  const t = new Int16Array(128).fill(-1);
  for (let i = 0; i < B64URL.length; i++) t[B64URL.charCodeAt(i)] = i;
  return t;
})();

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function utf8(s: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(s);
}

/** Throws on invalid UTF-8 rather than silently inserting U+FFFD. */
export function utf8Decode(b: Uint8Array): string {
  return decoder.decode(b);
}

export function toHex(b: Uint8Array): string {
  let out = "";
  for (let i = 0; i < b.length; i++) {
    const v = b[i]!;
    out += HEX[v >> 4]! + HEX[v & 15]!;
  }
  return out;
}

function hexNibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

export function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  if (hex.length % 2 !== 0) throw new TypeError("hex string has an odd number of characters");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexNibble(hex.charCodeAt(2 * i));
    const lo = hexNibble(hex.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw new TypeError("invalid hex character");
    out[i] = (hi << 4) | lo;
  }
  return out;
}

// RFC 7515 §2 / RFC 4648 §5: base64url without padding.
export function toBase64url(b: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]! + B64URL[(n >> 6) & 63]! + B64URL[n & 63]!;
  }
  const rest = b.length - i;
  if (rest === 1) {
    const n = b[i]! << 16;
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8);
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]! + B64URL[(n >> 6) & 63]!;
  }
  return out;
}

function b64v(s: string, i: number): number {
  const c = s.charCodeAt(i);
  const v = c < 128 ? B64URL_LOOKUP[c]! : -1;
  if (v < 0) throw new TypeError("invalid base64url character");
  return v;
}

/**
 * Strict base64url decode: no padding, no whitespace, url alphabet only, and the unused low bits of
 * the last character must be zero (non-canonical encodings would let a tampered string decode to the
 * same bytes).
 */
export function fromBase64url(s: string): Uint8Array<ArrayBuffer> {
  const rem = s.length % 4;
  if (rem === 1) throw new TypeError("invalid base64url length");
  const out = new Uint8Array(Math.floor(s.length / 4) * 3 + (rem === 0 ? 0 : rem - 1));
  let o = 0;
  let i = 0;
  for (; i + 3 < s.length; i += 4) {
    const n = (b64v(s, i) << 18) | (b64v(s, i + 1) << 12) | (b64v(s, i + 2) << 6) | b64v(s, i + 3);
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 255;
    out[o++] = n & 255;
  }
  if (rem === 2) {
    const a = b64v(s, i);
    const b = b64v(s, i + 1);
    if ((b & 15) !== 0) throw new TypeError("non-canonical base64url");
    out[o++] = (a << 2) | (b >> 4);
  } else if (rem === 3) {
    const a = b64v(s, i);
    const b = b64v(s, i + 1);
    const c = b64v(s, i + 2);
    if ((c & 3) !== 0) throw new TypeError("non-canonical base64url");
    out[o++] = (a << 2) | (b >> 4);
    out[o++] = ((b & 15) << 4) | (c >> 2);
  }
  return out;
}

export function isBase64urlChar(c: number): boolean {
  return c < 128 && B64URL_LOOKUP[c]! >= 0;
}

/** Timing depends only on the lengths, never on where the inputs differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Best effort: JS cannot guarantee no copies exist, but buffers we own should not outlive their use. */
export function zeroize(...bufs: (Uint8Array | undefined | null)[]): void {
  for (const b of bufs) b?.fill(0);
}

export function u32be(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0, false);
  return out;
}

/** Big-endian bytes → bigint (for scalars). */
export function bytesToBigInt(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${toHex(b)}`);
}

/** bigint → fixed-length big-endian bytes; throws if it does not fit. */
export function bigIntToBytes(n: bigint, length: number): Uint8Array<ArrayBuffer> {
  if (n < 0n) throw new RangeError("negative integer");
  const hex = n.toString(16).padStart(length * 2, "0");
  if (hex.length > length * 2) throw new RangeError("integer does not fit");
  return fromHex(hex);
}
