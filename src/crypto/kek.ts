/**
 * The key-encryption key (KEK): parsing it from configuration with messages an operator can act on,
 * generating one, and a stable fingerprint stored as `kekId` (the KEK itself is never stored).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { KekFormatError } from "./errors.ts";
import { concatBytes, fromBase64url, fromHex, toHex, utf8, zeroize } from "./bytes.ts";

export const KEK_BYTES = 32;

/** Both commands were checked to print a valid 64-hex-character KEK under Bun. */
export const KEK_HOWTO =
  'generate one with `openssl rand -hex 32` or `bun -e "console.log(crypto.getRandomValues(new Uint8Array(32)).toHex())"`';

const HEX_RE = /^[0-9a-fA-F]*$/;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;
const B64STD_RE = /^[A-Za-z0-9+/]*$/;

/**
 * Accepted forms of a 32-byte key (surrounding whitespace, e.g. a trailing newline, is ignored):
 *  - 64 hex characters (either case);
 *  - 43 base64url characters, no padding (RFC 4648 §5);
 *  - 44 characters of padded base64 ending in one `=` (what `openssl rand -base64 32` prints), in
 *    either the standard or the url alphabet but not a mix; likewise 43 unpadded standard-alphabet
 *    characters. These lengths cannot be confused with hex, so accepting them is unambiguous.
 * The last character's unused bits must be zero (canonical encoding), so one key has one spelling.
 */
export function parseKek(value: string | undefined, name = "MASTER_KEY_ENCRYPTION_KEY"): Uint8Array<ArrayBuffer> {
  const fail = (what: string): never => {
    throw new KekFormatError(
      `${name} ${what}; it must be 32 random bytes as 64 hex characters or 43 base64url characters — ${KEK_HOWTO}`,
    );
  };
  if (value === undefined) return fail("is not set");
  const v = value.trim();
  if (v.length === 0) return fail("is empty");

  if (HEX_RE.test(v)) {
    if (v.length === 64) return fromHex(v);
    // 43 hex-looking characters are legitimately base64url; everything else hex-only is a hex mistake.
    if (v.length !== 43) {
      return fail(`looks like hex but has ${v.length} characters (${describeHexBytes(v.length)}), not 64`);
    }
  }

  let body = v;
  if (v.length === 44 && v.endsWith("=")) body = v.slice(0, 43);
  if (body.includes("="))
    return fail(
      "has misplaced '=' padding (a 32-byte key in padded base64 is 44 characters ending in exactly one '=')",
    );
  const urlOk = B64URL_RE.test(body);
  const stdOk = B64STD_RE.test(body);
  if (!urlOk && !stdOk) {
    const pos = firstBadChar(body);
    if (/[-_]/.test(body) && /[+/]/.test(body))
      return fail("mixes the base64url ('-', '_') and standard base64 ('+', '/') alphabets");
    return fail(`contains a character that is neither hex nor base64 at position ${pos + 1}`);
  }
  if (body.length !== 43) {
    const bytes = Math.floor((body.length * 6) / 8);
    return fail(
      `has ${v.length} characters (about ${bytes} bytes as base64url), not 43 base64url or 64 hex characters`,
    );
  }
  try {
    return fromBase64url(stdOk && !urlOk ? body.replaceAll("+", "-").replaceAll("/", "_") : body);
  } catch {
    return fail("is not canonical base64 (the last character's unused low bits must be zero)");
  }
}

function describeHexBytes(chars: number): string {
  return chars % 2 === 0 ? `${chars / 2} bytes` : "an odd number of hex digits";
}

function firstBadChar(s: string): number {
  for (let i = 0; i < s.length; i++) if (!/[A-Za-z0-9_\-+/]/.test(s[i]!)) return i;
  return 0;
}

/**
 * Why these 32 bytes are obviously not a random key, or null. Each test is one a uniformly random
 * key fails with probability below 2^-45, so a real key is never refused:
 *  - all bytes the same (32 zero bytes, `7` × 64 in hex);
 *  - a block of at most 16 bytes repeated (`deadbeef` × 8, a 16-byte key pasted twice);
 *  - an arithmetic progression mod 256 (00 01 02 …, counters in any step);
 *  - every byte printable ASCII (a passphrase encoded as base64), p = (95/256)^32 ≈ 2^-46;
 *  - fewer than 12 distinct byte values (a random key has ~30), p < 2^-70;
 *  - given its text form (`text`, base64/base64url only): non-overlapping dictionary words of 4+
 *    letters (case-insensitive, KEK_WORDS) cover 16 or more of its 43 characters — a passphrase
 *    typed in base64url form, whose bytes look random. For uniformly random text the expected
 *    number of such word sets (a union bound on the probability) is below 2^-41.
 * This refuses only the obvious; it cannot tell a well-made key from a merely odd-looking one.
 */
export function weakKekReason(kek: Uint8Array, text?: string): string | null {
  const n = kek.length;
  if (n === 0) return "it is empty";
  if (kek.every((b) => b === kek[0])) return `all ${n} bytes are the same`;
  for (let p = 2; p <= Math.min(16, n / 2); p++) {
    let periodic = true;
    for (let i = p; i < n && periodic; i++) periodic = kek[i] === kek[i - p];
    if (periodic) return `it repeats a ${p}-byte block`;
  }
  const step = (kek[1]! - kek[0]! + 256) & 0xff;
  if (kek.every((b, i) => i === 0 || ((b - kek[i - 1]! + 256) & 0xff) === step))
    return "it counts up or down in equal steps";
  if (kek.every((b) => b >= 0x20 && b <= 0x7e)) return "every byte is printable text (a passphrase, not random bytes)";
  const distinct = new Set(kek).size;
  if (distinct < 12) return `it has only ${distinct} distinct byte values`;
  if (text !== undefined) {
    const t = text.trim();
    if (!HEX_RE.test(t)) {
      const covered = dictionaryCoverage(t);
      if (covered >= WORD_COVERAGE_LIMIT)
        return `its text is dictionary words (${covered} of its ${t.replace(/=+$/, "").length} characters: a typed passphrase, not random bytes)`;
    }
  }
  return null;
}

/** Dictionary words of 4+ letters that passphrases are made of (see weakKekReason). */
const KEK_WORDS: readonly string[] = (
  "about above access account admin after again against alpha always another apple april august " +
  "autumn backup banana base being below best beta black blue brown build cannot change changeme " +
  "charlie chrono cloud code company computer correct could cyber data delta default demo " +
  "development dragon during each earth echo encrypt encryption enter every example first football " +
  "foxtrot free from give good great green guest hello here horse house hunter into just keep " +
  "letmein like little long love main make manager many master money monkey more most much must " +
  "myself never next nothing november october only open orange other over pass passphrase password " +
  "please private prod production public purple qwerty random real root safe sample secret secure " +
  "security september server service shadow should since some staple staging still strong summer " +
  "sunshine super system temp test than thank that their them then there these they thing think " +
  "this those through time today token trust under until very vault want water welcome well were " +
  "what when where which while white will winter with word world would year yellow your zulu"
).split(" ");
const WORD_COVERAGE_LIMIT = 16;

/** The most characters of `text` that non-overlapping KEK_WORDS occurrences cover (case-insensitive); O(len × words). */
function dictionaryCoverage(text: string): number {
  const t = text.toLowerCase();
  const best = new Array<number>(t.length + 1).fill(0);
  for (let i = t.length - 1; i >= 0; i--) {
    let b = best[i + 1]!;
    for (const w of KEK_WORDS) if (t.startsWith(w, i)) b = Math.max(b, w.length + best[i + w.length]!);
    best[i] = b;
  }
  return best[0]!;
}

export function generateKek(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(KEK_BYTES));
}

const FINGERPRINT_LABEL = utf8("chronokms/v1/kek-fingerprint\0");

/**
 * First 16 hex chars (64 bits) of SHA-256(label || kek). Domain-separated so the fingerprint is not a
 * hash that shows up in any other protocol; 64 bits is enough to tell keys apart, not to brute-force them.
 */
export function kekFingerprint(kek: Uint8Array): string {
  if (kek.length !== KEK_BYTES) throw new KekFormatError(`a KEK must be ${KEK_BYTES} bytes, got ${kek.length}`);
  const buf = concatBytes(FINGERPRINT_LABEL, kek);
  const fp = toHex(sha256(buf)).slice(0, 16);
  zeroize(buf);
  return fp;
}
