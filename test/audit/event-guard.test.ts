/**
 * The audit event guard's details check against its plain definition (the code before its fast
 * paths): for any details value, the same verdict and the same message, secret-named keys, NUL and
 * lone surrogates (in names and values), non-finite numbers and nesting depth included.
 */
import { expect, test } from "bun:test";
import fc from "fast-check";
// The secret-name list is data the guard and this definition share; the logic around it is what is compared.
import { AuditEventError, SECRET_KEYS, SECRET_SUFFIX, assertStorableEvent } from "../../src/audit/event-guard.ts";

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function refText(v: string, path: string): void {
  if (v.includes("\u0000") || LONE_SURROGATE.test(v))
    throw new AuditEventError(`audit event: ${path} holds a NUL or an unpaired surrogate`);
}

function refJson(v: unknown, path: string, depth: number): void {
  if (depth > 32) throw new AuditEventError(`audit event: ${path} is nested too deeply`);
  if (v === null || typeof v === "boolean") return;
  if (typeof v === "string") {
    refText(v, path);
    return;
  }
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new AuditEventError(`audit event: ${path} is not a finite number`);
    return;
  }
  if (Array.isArray(v)) {
    for (const [i, item] of v.entries()) refJson(item, `${path}[${i}]`, depth + 1);
    return;
  }
  for (const [key, item] of Object.entries(v as object)) {
    const at = `${path}.${key}`;
    const k = key.toLowerCase().replace(/[_-]/g, "");
    if (SECRET_KEYS.has(k) || SECRET_SUFFIX.test(k))
      throw new AuditEventError(
        `audit event: ${at} looks like a secret; audit rows never hold token values, keys, seeds or API secrets`,
      );
    refText(key, at);
    if (item !== undefined) refJson(item, at, depth + 1);
  }
}

const outcome = (f: () => void) => {
  try {
    f();
    return "ok";
  } catch (e) {
    return e instanceof AuditEventError ? e.message : `other: ${String(e)}`;
  }
};

const text = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary" }),
  fc.constantFrom("a\u0000b", "\uD800", "x\uDC00", "\uD83D\uDE00", ""),
);
const key = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("reason", "resource", "keyId", "purpose", "policyId", "n", "list") },
  { weight: 1, arbitrary: fc.constantFrom("accessToken", "refresh_token", "Client-Secret", "seeds", "d", "JWE") },
  { weight: 1, arbitrary: text },
);
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.boolean(),
    text,
    fc.double(),
    fc.array(tie("v"), { maxLength: 3 }),
    fc.dictionary(key, fc.option(tie("v"), { nil: undefined }), { maxKeys: 4 }),
  ),
})).v;

/** Objects nested `n` deep, ending in `leaf`. */
const deep = (n: number, leaf: unknown): Record<string, unknown> => (n === 0 ? { x: leaf } : { x: deep(n - 1, leaf) });

test("details: same verdict and message as the plain definition", () => {
  const event = (details: Record<string, unknown>) => ({
    eventType: "TOKEN_STORED" as const,
    actor: "a",
    success: true,
    details,
  });
  fc.assert(
    fc.property(fc.dictionary(key, fc.option(value, { nil: undefined }), { maxKeys: 5 }), (details) => {
      expect(outcome(() => assertStorableEvent(event(details)))).toBe(outcome(() => refJson(details, "details", 0)));
    }),
    { numRuns: 3000 },
  );
  for (const n of [30, 31, 32, 33])
    for (const leaf of ["s", null, true, 1, { y: 1 }, "a\u0000"]) {
      const details = deep(n, leaf);
      expect(outcome(() => assertStorableEvent(event(details)))).toBe(outcome(() => refJson(details, "details", 0)));
    }
});
