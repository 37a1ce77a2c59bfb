/**
 * Zod schemas for the token API (SPEC §8): the stored token body, path identifiers, query
 * options. Strict objects with bounded sizes, so bad input is a clear 400 and never a write.
 */
import { z } from "zod";
import { IDENTIFIER_PATTERN, InstantSchema, MAX_PURPOSE_LENGTH } from "../lib/schemas.ts";
import { safeString } from "../lib/text.ts";

/** Longest token value accepted (real access tokens, JWTs included, stay well below). */
export const MAX_TOKEN_LENGTH = 8 * 1024;
// RFC 6749 Appendix A: token values are VSCHAR (%x20-7E); anything else is not a token.
const VSCHAR = /^[\x20-\x7e]+$/;

const identifier = (what: string) =>
  safeString(what)
    .regex(IDENTIFIER_PATTERN, { error: `${what} must be 1–128 characters from A–Z a–z 0–9 . _ : @ + -` })
    .describe(`${what}: 1–128 characters from A–Z a–z 0–9 . _ : @ + -`);

const tokenValue = (what: string) =>
  z
    .string({ error: (iss) => (iss.input === undefined ? `${what} is required` : `${what} must be a string`) })
    .min(1, { error: `${what} must not be empty` })
    .max(MAX_TOKEN_LENGTH, { error: `${what} must be at most ${MAX_TOKEN_LENGTH} characters` })
    .regex(VSCHAR, { error: `${what} must be printable ASCII (RFC 6749 VSCHAR)` });

const shortText = (what: string, max: number) =>
  z
    .string({ error: `${what} must be a string` })
    .min(1, { error: `${what} must not be empty` })
    .max(max, { error: `${what} must be at most ${max} characters` })
    .regex(VSCHAR, { error: `${what} must be printable ASCII` });

/**
 * Integration names are canonical lower case everywhere (SPEC v2 §4): a mixed-case name in a path
 * or filter is accepted and canonicalised here, at the API boundary, so storage, policy scopes
 * (compared in lower case too) and provider routing all see one spelling: `Gmail/u` is `gmail/u`.
 */
const integrationName = () =>
  identifier("integration")
    .transform((s) => s.toLowerCase())
    .describe("integration: 1–128 characters from A–Z a–z 0–9 . _ : @ + -; canonicalised to lower case");

export const TokenParamsSchema = z.strictObject({
  integration: integrationName(),
  userId: identifier("userId"),
});
export const UserParamsSchema = z.strictObject({ userId: identifier("userId") });

export const StoreTokenBodySchema = z
  .strictObject(
    {
      accessToken: tokenValue("accessToken"),
      refreshToken: tokenValue("refreshToken").optional(),
      expiresAt: InstantSchema.optional().describe("When the access token expires: ISO-8601 with offset, or epoch ms"),
      scope: shortText("scope", 2048).optional(),
      tokenType: shortText("tokenType", 64).optional(),
    },
    { error: (iss) => (iss.code === "invalid_type" ? "the token body must be a JSON object" : undefined) },
  )
  .describe("An OAuth token to store; token values are encrypted before they reach the database");

/** A read's purpose, from `?purpose=` or the `X-Purpose` header: too long is a 400, never truncated. */
export function purposeText(what: string) {
  return safeString(what)
    .trim()
    .max(MAX_PURPOSE_LENGTH, { error: `${what} must be at most ${MAX_PURPOSE_LENGTH} characters` })
    .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, { error: `${what} must not contain control characters` });
}
export const PurposeHeaderSchema = purposeText("X-Purpose");
/** The X-Purpose header as a route's `request.headers` (validated like the query parameter). */
export const PurposeHeadersSchema = z.object({ "x-purpose": PurposeHeaderSchema.optional() });

const purposeParam = purposeText("purpose")
  .optional()
  .describe("Why the token is read (for purpose policies); the X-Purpose header is the alternative");

export const ReadTokenQuerySchema = z.strictObject({
  refresh: z
    .enum(["auto", "never", "force"], { error: 'refresh must be "auto", "never" or "force"' })
    .default("auto")
    .describe(
      "auto (default): refresh first when the token expires within 5 minutes; force: refresh now (e.g. the provider rejected the access token); never: return what is stored",
    ),
  purpose: purposeParam,
});

export const StatusQuerySchema = z.strictObject({ purpose: purposeParam });

export const ListTokensQuerySchema = z.strictObject({
  userId: identifier("userId").optional(),
  integration: integrationName().optional(),
  purpose: purposeParam.describe(
    "Purpose each record is judged with (purpose policies); the X-Purpose header is the alternative",
  ),
  limit: z.coerce
    .number({ error: "limit must be a number" })
    .int({ error: "limit must be a whole number" })
    .min(1, { error: "limit must be at least 1" })
    .max(1000, { error: "limit must be at most 1000" })
    .default(100),
  cursor: z.uuid({ error: "cursor must be the nextCursor of a previous page" }).optional(),
});

export type StoreTokenBody = z.output<typeof StoreTokenBodySchema>;
export type ListTokensQuery = z.output<typeof ListTokensQuerySchema>;

/** `?revoke=` of the deletes: best-effort (default) deletes even when the provider's revocation failed. */
export const DeleteTokenQuerySchema = z.strictObject({
  revoke: z
    .enum(["best-effort", "required"], { error: "revoke must be best-effort or required" })
    .default("best-effort")
    .describe("required: keep the record (502) unless the provider confirmed the revocation"),
});
