/**
 * The one validation-failure shape, for route schemas and service-level parsing alike:
 * `ValidationError("invalid <what>: <path>: <first message> (and N more issues)",
 * { issues: [{ path: ["config", "hours", 0], code, message }] })`, which the HTTP layer sends as
 * `{ error: { code: "VALIDATION_FAILED", message, details: { issues }, requestId } }`. Paths are
 * arrays (keys may hold dots), relative to what was parsed.
 */
import type { z } from "zod";
import { ValidationError } from "../errors.ts";

export interface ValidationIssue {
  path: (string | number)[];
  code: string;
  message: string;
}

export interface ValidationDetails {
  issues: ValidationIssue[];
}

export function toValidationError(error: z.ZodError, what: string): ValidationError {
  const issues: ValidationIssue[] = error.issues.map((i) => ({
    path: i.path.map((p) => (typeof p === "number" ? p : String(p))),
    code: i.code,
    message: i.message,
  }));
  return validationError(what, issues);
}

/** For checks zod does not make (e.g. a patch that changes type without a config). */
export function validationError(what: string, issues: ValidationIssue[]): ValidationError {
  const first = issues[0];
  const where = first !== undefined && first.path.length > 0 ? `${first.path.join(".")}: ` : "";
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more issue${issues.length > 2 ? "s" : ""})` : "";
  const details: ValidationDetails = { issues };
  return new ValidationError(`invalid ${what}: ${where}${first?.message ?? "rejected"}${more}`, details);
}

/** `schema.parse` that throws the one shape instead of a ZodError. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw toValidationError(result.error, what);
  return result.data;
}
