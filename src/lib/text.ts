/**
 * The one string primitive for untrusted input: refuses NUL bytes (PostgreSQL text and jsonb
 * cannot hold them) and unpaired UTF-16 surrogates (not Unicode; they cannot be encoded as UTF-8),
 * so such input is a 400 at the edge instead of a 500/503 from the database or the JSON encoder.
 * Every string a client sends — bodies, path and query parameters, headers — goes through
 * `safeString` (or `isSafeText`, for values zod does not type, such as free-form metadata).
 */
import { z } from "zod";

/** True when `s` holds no NUL and no unpaired surrogate. */
export function isSafeText(s: string): boolean {
  return !s.includes("\u0000") && (s as string & { isWellFormed(): boolean }).isWellFormed();
}

/** The message for a string that fails `isSafeText`. */
export const unsafeTextMessage = (what: string) => `${what} must not contain NUL characters or unpaired surrogates`;

/**
 * `z.string()` that refuses NUL and unpaired surrogates, with a type error that tells a missing
 * field from a wrongly typed one. Chain further checks (`.trim()`, `.max()`, `.regex()`) on it.
 */
export function safeString(what: string) {
  return z
    .string({
      error: (iss: { input?: unknown }) =>
        iss.input === undefined ? `${what} is required` : `${what} must be a string`,
    })
    .refine(isSafeText, { error: unsafeTextMessage(what) });
}

/**
 * The first path (e.g. `["a", 2]`) inside a JSON value where a string — a value or an object
 * key — fails `isSafeText`, or null when there is none. Iterative, so deep nesting cannot
 * overflow the stack.
 */
export function findUnsafeText(value: unknown): (string | number)[] | null {
  const stack: Array<{ v: unknown; path: (string | number)[] }> = [{ v: value, path: [] }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (typeof v === "string") {
      if (!isSafeText(v)) return path;
    } else if (Array.isArray(v)) {
      for (const [i, item] of v.entries()) stack.push({ v: item, path: [...path, i] });
    } else if (v !== null && typeof v === "object") {
      for (const [k, item] of Object.entries(v)) {
        if (!isSafeText(k)) return path;
        stack.push({ v: item, path: [...path, k] });
      }
    }
  }
  return null;
}
