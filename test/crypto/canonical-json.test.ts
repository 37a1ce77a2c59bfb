/** canonicalJson (the bytes every audit hash and keyring MAC covers) against its plain recursive definition and RFC 8785 examples. */
import { expect, test } from "bun:test";
import fc from "fast-check";
import { canonicalJson } from "../../src/crypto/canonical-json.ts";

/** The definition, written the obvious way: the fast version must give the same bytes for every value. */
function reference(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("non-finite");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(reference).join(",")}]`;
  if (typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${reference(obj[k])}`).join(",")}}`;
  }
  throw new TypeError(typeof value);
}

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.boolean(),
    fc.string({ unit: "binary" }),
    fc.string({ unit: "grapheme" }),
    fc.maxSafeInteger(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.array(tie("value")),
    fc.dictionary(fc.string({ unit: "binary" }), fc.option(tie("value"), { nil: undefined })),
  ),
})).value;

test("equals the recursive definition for any JSON value (undefined members left out)", () => {
  fc.assert(
    fc.property(json, (v) => {
      expect(canonicalJson(v)).toBe(reference(v));
    }),
    { numRuns: 2000 },
  );
});

test("members sort by UTF-16 code units, strings escape as ECMAScript does (RFC 8785 §3.2.3 example)", () => {
  const v = {
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\ud83d\ude00": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis",
  };
  expect(canonicalJson(v)).toBe(
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
  );
  expect(canonicalJson({ b: [1, "x", null, true], a: { d: undefined, c: false } })).toBe(
    '{"a":{"c":false},"b":[1,"x",null,true]}',
  );
});

test("refuses what JSON cannot hold", () => {
  for (const bad of [
    Number.NaN,
    Number.POSITIVE_INFINITY,
    undefined,
    () => 1,
    Symbol("s"),
    1n,
    [1, undefined],
    { a: [Number.NaN] },
  ])
    expect(() => canonicalJson(bad)).toThrow(TypeError);
  // A hole is not null: refused rather than written as invalid JSON.
  // biome-ignore lint/suspicious/noSparseArray: the hole is the point
  expect(() => canonicalJson([1, , 2])).toThrow(TypeError);
});

test("member names from data (verification reads rows an attacker may have planted) are not kept: only short ones are", async () => {
  // A module instance of its own (Bun keys modules by specifier, query included): its name cache
  // starts empty, whatever other test files in this process cached.
  const spec = "../../src/crypto/canonical-json.ts?own-name-cache";
  const fresh = (await import(spec)) as typeof import("../../src/crypto/canonical-json.ts");
  expect(fresh.quotedNamesRemembered()).toEqual({ names: 0, chars: 0 });
  for (let i = 0; i < 50; i++) fresh.canonicalJson({ [`${"k".repeat(5000)}${i}`]: 1 });
  expect(fresh.quotedNamesRemembered()).toEqual({ names: 0, chars: 0 });
  fresh.canonicalJson({ short: 1 });
  expect(fresh.quotedNamesRemembered()).toEqual({ names: 1, chars: 5 });
});
