/**
 * fast-check generators for the HTTP fuzz: operations come from the service's own OpenAPI
 * document (a new route is fuzzed without touching this file), bodies are built from each
 * operation's JSON schema and then broken (wrong types, unknown fields, dropped fields), or replaced
 * by hostile payloads (huge, deeply nested, malformed, invalid UTF-8, wrong content type).
 */
import fc from "fast-check";

export interface Operation {
  method: string;
  /** OpenAPI template, e.g. `/v1/tokens/{integration}/{userId}`. */
  path: string;
  params: Array<{ in: "path" | "query" | "header"; name: string; required: boolean; schema: JsonSchema }>;
  body?: JsonSchema;
}

export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  format?: string;
  additionalProperties?: boolean | JsonSchema;
};

/** Every operation the OpenAPI document lists. */
export function operationsOf(doc: {
  paths: Record<
    string,
    Record<string, { parameters?: unknown[]; requestBody?: { content?: Record<string, { schema?: JsonSchema }> } }>
  >;
}): Operation[] {
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ["get", "post", "put", "patch", "delete"]) {
      const op = item[method];
      if (!op) continue;
      ops.push({
        method: method.toUpperCase(),
        path,
        params: ((op.parameters ?? []) as Operation["params"]).map((p) => ({
          in: p.in,
          name: p.name,
          required: !!p.required,
          schema: p.schema ?? {},
        })),
        ...(op.requestBody?.content?.["application/json"]?.schema
          ? { body: op.requestBody.content["application/json"].schema }
          : {}),
      });
    }
  }
  return ops;
}

/** Values that have broken parsers before: empty, numeric edge cases, traversal, encodings, injection. */
export const nastyStrings = [
  "",
  " ",
  "null",
  "undefined",
  "0",
  "-1",
  "1e309",
  "-0",
  "NaN",
  "Infinity",
  "true",
  "[]",
  "{}",
  "..",
  "../..",
  "%",
  "%zz",
  "%00",
  "%ff",
  "\u0000",
  "\u202e",
  "\ud800",
  "💥",
  "a".repeat(129),
  "x".repeat(5000),
  "'; DROP TABLE requesters; --",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a Log4Shell-style payload, literal on purpose
  "${jndi:ldap://x}",
  "<script>",
  "__proto__",
  "constructor",
  "prototype",
  "9999999999999999999999",
  "2024-02-30T25:61:00Z",
  "-8640000000000001",
  "8640000000000001",
  "0190b000-0000-7000-8000-000000000000",
  "00000000-0000-0000-0000-000000000000",
  "ckms_",
  "ckms_aaaaaaaaaaaaaaaa_",
  "\t\n",
  "a/b",
  "a?b",
  "a#b",
];

/** Characters no stored string may hold: NUL and unpaired UTF-16 surrogates (SPEC §7: a 400). */
export const unsafeTextChars = ["\u0000", "\ud800", "\udbff", "\udc00", "\udfff"];

/** `a` with one NUL or unpaired surrogate inserted somewhere: otherwise valid text that only that check refuses. */
export function poisoned(a: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(a, fc.constantFrom(...unsafeTextChars), fc.nat()).map(([s, c, n]) => {
    const i = n % (s.length + 1);
    // Never split an existing surrogate pair (that would make two problems, not one).
    const at = i > 0 && i < s.length && /[\ud800-\udbff]/.test(s[i - 1]!) ? i + 1 : i;
    return s.slice(0, at) + c + s.slice(at);
  });
}

export const junkString: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: poisoned(fc.string({ maxLength: 20 })), weight: 1 },
  { arbitrary: fc.constantFrom(...nastyStrings), weight: 4 },
  { arbitrary: fc.string({ maxLength: 40 }), weight: 2 },
  { arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }), weight: 1 },
  { arbitrary: fc.string({ unit: "binary", maxLength: 20 }), weight: 1 },
  { arbitrary: fc.uuid(), weight: 1 },
  { arbitrary: fc.integer().map(String), weight: 1 },
  { arbitrary: fc.double().map(String), weight: 1 },
);

const junkValue: fc.Arbitrary<unknown> = fc.oneof(
  junkString,
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1e308,
    -1e308,
    2 ** 53 + 1,
    1.5,
    [],
    {},
    [null],
    { "": 1 },
    JSON.parse('{"__proto__":{"admin":true}}') as unknown,
  ),
  fc.jsonValue({ maxDepth: 3 }),
  fc.integer(),
  fc.double(),
);

const timeNames = new Set(["start", "end", "from", "to", "expiresAt", "notBefore", "notAfter"]);
const timeLike: fc.Arbitrary<unknown> = fc.oneof(
  fc.date({ min: new Date(0), max: new Date(4102444800000), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.integer({ min: 0, max: 4102444800000 }),
  fc.constant(Date.now()),
  fc.integer({ min: -5, max: 5 }).map((h) => new Date(Date.now() + h * 3600_000).toISOString()),
  fc.constantFrom("2024-01-01", "2024-01-01T00:00:00", "yesterday", "", -1, 1e20, "1700000000000"),
);

/** A value that (mostly) satisfies the schema; the mutation step breaks it afterwards. */
export function fromSchema(s: JsonSchema, depth = 0, name?: string): fc.Arbitrary<unknown> {
  if (name && timeNames.has(name))
    return fc.oneof({ arbitrary: timeLike, weight: 4 }, { arbitrary: plain(s, depth), weight: 1 });
  return plain(s, depth);
}

function plain(s: JsonSchema, depth: number): fc.Arbitrary<unknown> {
  if (depth > 6) return fc.constant(null);
  const alts = s.oneOf ?? s.anyOf;
  if (alts && alts.length > 0) return fc.oneof(...alts.map((a) => fromSchema(a, depth + 1)));
  if (s.enum && s.enum.length > 0) return fc.constantFrom(...s.enum);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case "string": {
      const max = Math.min(s.maxLength ?? 40, 40);
      const min = Math.min(s.minLength ?? 0, max);
      if (s.format === "date-time") return timeLike;
      if (s.format === "email")
        return fc.oneof(
          { arbitrary: fc.emailAddress(), weight: 4 },
          { arbitrary: poisoned(fc.emailAddress()), weight: 1 },
        );
      if (s.pattern) {
        let re: RegExp | undefined;
        try {
          re = new RegExp(s.pattern);
        } catch {}
        if (re) {
          const valid = fc.stringMatching(re).map((v) => (v.length > max ? v.slice(0, max) : v.padEnd(min, "a")));
          return fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: poisoned(valid), weight: 1 });
        }
      }
      const text = fc.string({ minLength: min, maxLength: max });
      return fc.oneof({ arbitrary: text, weight: 4 }, { arbitrary: poisoned(text), weight: 1 });
    }
    case "integer":
      return fc.integer({ min: Math.max(s.minimum ?? -1e6, -(2 ** 31)), max: Math.min(s.maximum ?? 1e6, 2 ** 31) });
    case "number":
      return fc.double({ min: s.minimum ?? -1e9, max: s.maximum ?? 1e9, noNaN: true });
    case "boolean":
      return fc.boolean();
    case "null":
      return fc.constant(null);
    case "array":
      return fc.array(s.items ? fromSchema(s.items, depth + 1) : junkValue, {
        minLength: Math.min(s.minItems ?? 0, 3),
        maxLength: Math.min(s.maxItems ?? 3, 3),
      });
    case "object": {
      const props = s.properties ?? {};
      if (Object.keys(props).length === 0) {
        // Free-form objects (requester metadata): NUL and surrogates in keys and in nested values too.
        const key = fc.oneof(
          { arbitrary: fc.string({ maxLength: 8 }), weight: 4 },
          { arbitrary: poisoned(fc.string({ maxLength: 8 })), weight: 1 },
        );
        const nested = fc.oneof(
          junkValue,
          poisoned(fc.string({ maxLength: 8 })).map((v) => ({ deep: [v] })),
        );
        return fc.dictionary(key, nested, { maxKeys: 3 });
      }
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries(props)) record[k] = fromSchema(v, depth + 1, k);
      return fc.record(record, { requiredKeys: (s.required ?? []).filter((k) => k in props) });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Every path into a JSON value (objects and arrays), the root included. */
function paths(
  v: unknown,
  prefix: Array<string | number> = [],
  out: Array<Array<string | number>> = [],
): Array<Array<string | number>> {
  out.push(prefix);
  if (Array.isArray(v)) for (const [i, x] of v.entries()) paths(x, [...prefix, i], out);
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

type Mutation = "replace" | "drop" | "add-unknown";

/** Applies one mutation at the n-th path of a (deep-copied) value. */
function mutate(value: unknown, n: number, how: Mutation, junk: unknown, unknownKey: string): unknown {
  const copy = structuredClone(value);
  const all = paths(copy);
  const at = all[n % all.length]!;
  if (at.length === 0) {
    if (how === "add-unknown" && copy && typeof copy === "object" && !Array.isArray(copy))
      return { ...copy, [unknownKey]: junk };
    return how === "replace" ? junk : copy;
  }
  const parent = at.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], copy) as Record<
    string | number,
    unknown
  >;
  const key = at[at.length - 1]!;
  if (how === "drop") {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
  } else if (how === "add-unknown" && parent[key] && typeof parent[key] === "object" && !Array.isArray(parent[key])) {
    (parent[key] as Record<string, unknown>)[unknownKey] = junk;
  } else {
    parent[key] = junk;
  }
  return copy;
}

/** A schema-shaped value, left valid in a fifth of the cases and otherwise broken once or twice. */
export function bodyValue(schema: JsonSchema): fc.Arbitrary<unknown> {
  const once = (a: fc.Arbitrary<unknown>) =>
    fc
      .tuple(
        a,
        fc.nat(),
        fc.constantFrom<Mutation>("replace", "drop", "add-unknown"),
        junkValue,
        fc.oneof(
          fc.constantFrom("extra", "__proto__", "constructor", "id", "version", "createdAt", "roles", "granted"),
          fc.string({ maxLength: 8 }),
        ),
      )
      .map(([v, n, how, junk, key]) => mutate(v, n, how, junk, key));
  const base = fromSchema(schema);
  return fc.oneof(
    { arbitrary: base, weight: 1 },
    { arbitrary: once(base), weight: 3 },
    { arbitrary: once(once(base)), weight: 1 },
  );
}

/** What to send as the body; huge ones are described, not built, so the generator stays cheap. */
export type BodySpec =
  | { kind: "none" }
  | { kind: "json"; value: unknown }
  | { kind: "text"; text: string }
  | { kind: "deep"; depth: number; shape: "array" | "object" }
  | { kind: "huge"; bytes: number; shape: "string" | "array" | "keys" }
  | { kind: "bytes"; bytes: Uint8Array };

const enc = new TextEncoder();
const invalidUtf8 = [
  [0xc3, 0x28],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xff, 0xfe],
  [0xe2, 0x82],
  [0x80],
];

export function bodySpec(schema: JsonSchema | undefined, limit: number): fc.Arbitrary<BodySpec> {
  const json = schema ? bodyValue(schema) : fc.jsonValue({ maxDepth: 3 });
  return fc.oneof(
    { arbitrary: json.map((value): BodySpec => ({ kind: "json", value })), weight: schema ? 12 : 3 },
    { arbitrary: fc.jsonValue({ maxDepth: 6 }).map((value): BodySpec => ({ kind: "json", value })), weight: 2 },
    { arbitrary: fc.constant<BodySpec>({ kind: "none" }), weight: 1 },
    {
      arbitrary: fc
        .oneof(
          fc.string({ maxLength: 60 }),
          json
            .map((v) => JSON.stringify(v) ?? "")
            .chain((s) => fc.nat({ max: Math.max(s.length - 1, 0) }).map((n) => s.slice(0, n))),
          fc.constantFrom(
            "{",
            "}",
            "[",
            "{'a':1}",
            '{"a":1,}',
            "NaN",
            "undefined",
            "nul",
            '"\\ud800"',
            '{"a":1}{"b":2}',
            "\ufeff{}",
            "1e99999",
            '{"__proto__":{"x":1}}',
          ),
        )
        .map((text): BodySpec => ({ kind: "text", text })),
      weight: 2,
    },
    {
      arbitrary: fc
        .record({
          depth: fc.oneof(
            fc.integer({ min: 50, max: 2000 }),
            fc.integer({ min: 2000, max: Math.floor(limit / 6) }),
            fc.constant(limit),
          ),
          shape: fc.constantFrom<"array" | "object">("array", "object"),
        })
        .map((d): BodySpec => ({ kind: "deep", ...d })),
      weight: 1,
    },
    {
      arbitrary: fc
        .record({
          bytes: fc.constantFrom(limit - 64, limit, limit + 1, 2 * limit, 1024 * 1024 + 1, 3 * 1024 * 1024),
          shape: fc.constantFrom<"string" | "array" | "keys">("string", "array", "keys"),
        })
        .map((h): BodySpec => ({ kind: "huge", ...h })),
      weight: 1,
    },
    {
      arbitrary: fc
        .oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.tuple(json, fc.constantFrom(...invalidUtf8)).map(([v, bad]) => {
            const s = JSON.stringify(v) ?? '""';
            const i = Math.max(s.indexOf('"') + 1, 0);
            return new Uint8Array([...enc.encode(s.slice(0, i)), ...bad, ...enc.encode(s.slice(i))]);
          }),
        )
        .map((bytes): BodySpec => ({ kind: "bytes", bytes })),
      weight: 2,
    },
  );
}

export function materialize(b: BodySpec): string | Uint8Array<ArrayBuffer> | undefined {
  switch (b.kind) {
    case "none":
      return undefined;
    case "json":
      return JSON.stringify(b.value) ?? "null";
    case "text":
      return b.text;
    case "deep":
      return b.shape === "array"
        ? "[".repeat(b.depth) + "]".repeat(b.depth)
        : `${'{"a":'.repeat(b.depth)}1${"}".repeat(b.depth)}`;
    case "huge":
      if (b.shape === "string") return JSON.stringify({ name: "x".repeat(b.bytes) });
      if (b.shape === "array") return `[${"1,".repeat(Math.floor(b.bytes / 2))}1]`;
      return `{${Array.from({ length: Math.floor(b.bytes / 12) }, (_, i) => `"k${i}":1`).join(",")}}`;
    case "bytes":
      return new Uint8Array(b.bytes);
  }
}

export const contentTypes = fc.oneof(
  { arbitrary: fc.constant("application/json"), weight: 10 },
  {
    arbitrary: fc.constantFrom(
      undefined,
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=xyz",
      "application/json; charset=latin1",
      "application/json; charset=utf-16",
      "application/problem+json",
      "APPLICATION/JSON",
      "application/jsonx",
      "*/*",
      "",
      "json",
      ";;;",
    ),
    weight: 3,
  },
);

/** Header values the Fetch API accepts (no NUL/CR/LF, latin-1 only), otherwise arbitrary. */
export function headerSafe(v: string): string {
  return v.replace(/[\u0000-\u0008\u000a-\u001f\u007f]|[^\u0000-\u00ff]/g, "?").trim();
}

export const junkHeaders: fc.Arbitrary<Array<[string, string]>> = fc.array(
  fc.oneof(
    fc.tuple(
      fc.constantFrom(
        "x-request-id",
        "x-forwarded-for",
        "x-real-ip",
        "user-agent",
        "accept",
        "x-purpose",
        "content-encoding",
        "accept-encoding",
        "origin",
        "cookie",
        "forwarded",
        "if-none-match",
        "range",
      ),
      junkString,
    ),
    fc.tuple(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), junkString),
    fc.tuple(fc.constant("user-agent"), fc.constantFrom("x".repeat(10_000), "Mozilla/5.0")),
    fc.tuple(
      fc.constant("x-request-id"),
      fc.constantFrom("r".repeat(300), "ok-id-1", "../../etc/passwd", "\u00ff\u00fe"),
    ),
  ),
  { maxLength: 4 },
);
