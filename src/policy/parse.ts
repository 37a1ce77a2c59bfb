/**
 * Entry points that turn untrusted JSON into validated policy-layer values, throwing a
 * `ValidationError` whose details carry the zod issues, so the HTTP layer maps every bad input
 * to one 4xx shape.
 */
import type { z } from "zod";
import { ValidationError } from "../errors.ts";
import {
  AccessRequestBodySchema,
  PolicyInputSchema,
  PolicyPatchSchema,
  type AccessRequestBody,
  type PolicyInput,
  type PolicyType,
} from "./schemas.ts";
import type { PolicyRecord } from "./types.ts";

export interface ValidationIssue {
  path: (string | number)[];
  code: string;
  message: string;
}

/** `invalid policy: config.hours.from: must be "HH:MM" …`, with every issue in `details.issues`. */
export function toValidationError(error: z.ZodError, what: string): ValidationError {
  const issues: ValidationIssue[] = error.issues.map((i) => ({
    path: i.path.map((p) => (typeof p === "number" ? p : String(p))),
    code: i.code,
    message: i.message,
  }));
  const first = issues[0];
  const where = first !== undefined && first.path.length > 0 ? `${first.path.join(".")}: ` : "";
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more issue${issues.length > 2 ? "s" : ""})` : "";
  return new ValidationError(`invalid ${what}: ${where}${first?.message ?? "rejected"}${more}`, { issues });
}

function parseWith<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw toValidationError(result.error, what);
  return result.data;
}

export function parsePolicyInput(input: unknown): PolicyInput {
  return parseWith(PolicyInputSchema, input, "policy");
}

export function parseAccessRequestBody(input: unknown): AccessRequestBody {
  return parseWith(AccessRequestBodySchema, input, "access request");
}

/** The stored fields of a policy that a patch can touch (a database row has at least these). */
export interface PolicyFields {
  name: string;
  type: PolicyType;
  priority: number;
  enabled: boolean;
  scope: unknown;
  config: unknown;
  description?: string | null;
}

function inputFields(p: PolicyFields): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: p.name,
    type: p.type,
    priority: p.priority,
    enabled: p.enabled,
    scope: p.scope,
    config: p.config,
  };
  if (p.description !== undefined && p.description !== null) out.description = p.description;
  return out;
}

/**
 * Merge a PATCH body into an existing policy and validate the result as a whole. Top-level
 * fields replace the old ones (scope and config whole); `description: null` removes it. Changing
 * `type` requires a new `config`, since the old one describes a different kind of rule.
 */
export function applyPolicyPatch(existing: PolicyFields, patch: unknown): PolicyInput {
  const p = parseWith(PolicyPatchSchema, patch, "policy patch");
  if (p.type !== undefined && p.type !== existing.type && p.config === undefined) {
    throw new ValidationError(
      `invalid policy patch: config: changing type from "${existing.type}" to "${p.type}" requires a new config`,
      { issues: [{ path: ["config"], code: "custom", message: "required when type changes" }] },
    );
  }
  const merged = inputFields(existing);
  for (const [key, value] of Object.entries(p)) {
    if (value === undefined) continue;
    if (key === "description" && value === null) delete merged.description;
    else merged[key] = value;
  }
  return parseWith(PolicyInputSchema, merged, "policy");
}

/**
 * A stored policy row → a `PolicyRecord` the engine can trust. Stored rows were validated on
 * write; re-validating on load catches rows edited by hand or written by an older version.
 */
export function parsePolicyRecord(row: PolicyFields & { id: string; version: number }): PolicyRecord {
  const input = parsePolicyInput(inputFields(row));
  return { ...input, id: row.id, version: row.version };
}
