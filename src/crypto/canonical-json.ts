/**
 * Canonical JSON (RFC 8785 JCS for the values we sign: objects, arrays, strings, safe integers,
 * booleans, null): keys sorted by UTF-16 code units, no whitespace, ECMAScript string escaping.
 * Object members whose value is undefined are left out; anything else JSON cannot hold throws.
 *
 * Every audit row's details go through here before they are hashed, so it is on the hot path of
 * each decision: one string built by concatenation, and each short member name's quoted form
 * computed once (long names, and any past the cap, are simply not remembered).
 * test/crypto/canonical-json.test.ts holds it to the plain recursive definition.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("canonical JSON cannot hold a non-finite number");
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) {
        let s = "[";
        for (let i = 0; i < value.length; i++) s += i === 0 ? canonicalJson(value[i]) : `,${canonicalJson(value[i])}`;
        return `${s}]`;
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      let s = "{";
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        s += `${s.length === 1 ? "" : ","}${quotedName(k)}:${canonicalJson(v)}`;
      }
      return `${s}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}

// Names come from code when the writer hashes a row, but verification canonicalises details read
// back from the database, which whoever can INSERT into it (or plant a backup) chooses: only short
// names are remembered, so the cache stays under MAX_QUOTED × MAX_QUOTED_NAME characters.
const QUOTED = new Map<string, string>();
const MAX_QUOTED = 4096;
const MAX_QUOTED_NAME = 64;
let quotedChars = 0;

function quotedName(k: string): string {
  let q = QUOTED.get(k);
  if (q === undefined) {
    q = JSON.stringify(k);
    if (k.length <= MAX_QUOTED_NAME && QUOTED.size < MAX_QUOTED) {
      QUOTED.set(k, q);
      quotedChars += k.length;
    }
  }
  return q;
}

/** How much the name cache holds (tests). */
export function quotedNamesRemembered(): { names: number; chars: number } {
  return { names: QUOTED.size, chars: quotedChars };
}
