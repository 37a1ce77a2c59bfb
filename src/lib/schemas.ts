/**
 * Zod primitives shared by every layer that reads untrusted input (routes, access, tokens,
 * policies): external identifiers, human text, bounded lists and the one instant parser. Plain
 * zod 4, so the HTTP layer hands them to @hono/zod-openapi unchanged.
 *
 * Instants — one parser, one meaning everywhere:
 * - Accepted: an ISO-8601 date-time with `Z` or a ±HH:MM offset, or epoch milliseconds (a number
 *   in JSON bodies, digits in query strings); normalised to epoch ms. Local date-times without an
 *   offset are refused: their zone is a guess.
 * - A range's end depends on what it bounds, and each field's description says which:
 *   data ranges (`timeRange`, a policy's `notBefore`/`notAfter`) are closed, end inclusive, so
 *   `start == end` names one instant; list filters (`from`/`to` on audit logs and access
 *   requests) are half-open `[from, to)`, so consecutive windows never count a row twice.
 */
import { z } from "zod";
import { safeString } from "./text.ts";

/** Earliest instant accepted anywhere: slice indices are unsigned, so nothing before the epoch. */
export const MIN_INSTANT_MS = 0;
/**
 * Latest instant accepted. The 32-bit slice space of 1 h slices reaches year ~490,000, but
 * ISO-8601 without expanded years stops at 9999 and nothing real lives beyond it.
 */
export const MAX_INSTANT_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/**
 * Longest time range one access request may name, whatever the policies say: 100 years. Longer
 * ranges are almost certainly mistakes (a seconds/milliseconds mix-up) rather than intent.
 */
export const MAX_RANGE_MS = 100 * 366 * 86_400_000;
/** Upper bound for second-valued config (max age, max duration): the same 100 years. */
export const MAX_CONFIG_SECONDS = MAX_RANGE_MS / 1000;
/** Bounded lists keep a policy row, and the work done per request, small. */
export const MAX_LIST_ITEMS = 1000;
export const MAX_PURPOSE_LENGTH = 500;

/**
 * External ids (requester ids, integration names, user ids): 1–128 characters from a charset that
 * is safe in URLs, logs, JWE `ctx` strings and reasons, and covers emails and `provider:id` forms.
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9._:@+-]{1,128}$/;
// The Cc category spelled as ranges, without the u flag, so the pattern survives into OpenAPI.
const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f-\u009f]*$/;

/** Type-error text that tells a missing field from a wrongly typed one. */
export const typeError = (what: string, expected: string) => (iss: { input?: unknown }) =>
  iss.input === undefined ? `${what} is required` : `${what} must be ${expected}`;

/** A quoted, length-capped echo of rejected input for error messages. */
export function preview(input: unknown): string {
  const s = typeof input === "string" ? input : String(input);
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}

export const identifier = (what: string) =>
  safeString(what)
    .regex(IDENTIFIER_PATTERN, {
      error: (iss) => `${what} must be 1–128 characters from A–Z a–z 0–9 . _ : @ + - (got ${preview(iss.input)})`,
    })
    .describe(`${what}: 1–128 characters from A–Z a–z 0–9 . _ : @ + -`);

/** Human text (names, departments, purposes): trimmed, bounded, no control characters. */
export const text = (what: string, max: number, min = 1) =>
  safeString(what)
    .trim()
    .min(min, { error: `${what} must not be empty` })
    .max(max, { error: `${what} must be at most ${max} characters` })
    .regex(NO_CONTROL_CHARS, { error: `${what} must not contain control characters` });

/**
 * A non-empty list. Present-but-empty is refused rather than read as "matches nothing" or
 * "matches everything": omitting the field is the one way to say "no restriction".
 */
export const list = <T extends z.ZodType>(item: T, what: string) =>
  z
    .array(item, { error: `${what} must be an array` })
    .min(1, { error: `${what} must not be empty (omit it to leave it unrestricted)` })
    .max(MAX_LIST_ITEMS, { error: `${what} must have at most ${MAX_LIST_ITEMS} entries` });

const isoDateTime = z.iso.datetime({ offset: true });

/** The instant rules of this module's header, on a string or a number; pushes issues and returns null on failure. */
function toInstant(value: string | number, ctx: z.RefinementCtx): number | null {
  let ms: number;
  if (typeof value === "string") {
    if (!isoDateTime.safeParse(value).success) {
      ctx.addIssue({
        code: "custom",
        input: value,
        message: `must be an ISO-8601 date-time with a Z or ±HH:MM offset, e.g. 2026-03-08T09:00:00Z (got ${preview(value)})`,
      });
      return null;
    }
    ms = Date.parse(value);
  } else {
    if (!Number.isFinite(value) || !Number.isInteger(value)) {
      ctx.addIssue({ code: "custom", input: value, message: "epoch milliseconds must be a finite integer" });
      return null;
    }
    ms = value;
  }
  if (!Number.isFinite(ms) || ms < MIN_INSTANT_MS) {
    ctx.addIssue({ code: "custom", input: value, message: "must not be before 1970-01-01T00:00:00Z" });
    return null;
  }
  if (ms > MAX_INSTANT_MS) {
    ctx.addIssue({ code: "custom", input: value, message: "must not be after 9999-12-31T23:59:59.999Z" });
    return null;
  }
  return ms;
}

/** An instant in a JSON body: an ISO-8601 string with offset, or epoch ms as a number. */
export const InstantSchema = z
  .union([safeString("instant"), z.number()], {
    error: "must be an ISO-8601 date-time string or epoch milliseconds",
  })
  .transform((value, ctx): number => toInstant(value, ctx) ?? z.NEVER)
  .describe("ISO-8601 date-time with offset (e.g. 2026-03-08T09:00:00Z) or epoch milliseconds");

/** An instant in a query string, where every value is text: digits are epoch ms, anything else ISO-8601. */
export const QueryInstantSchema = safeString("instant")
  .transform((value, ctx): number => toInstant(/^\d+$/.test(value) ? Number(value) : value, ctx) ?? z.NEVER)
  .describe("ISO-8601 date-time with offset (e.g. 2026-03-08T09:00:00Z) or epoch milliseconds as digits");
