/**
 * Entry points that turn untrusted JSON into validated policies, throwing the one
 * `ValidationError` shape (lib/validation-error.ts), so the HTTP layer maps every bad input to
 * one 4xx.
 */
import { parseWith, validationError } from "../lib/validation-error.ts";
import { PolicyInputSchema, PolicyPatchSchema, type PolicyInput, type PolicyType } from "./schemas.ts";
import type { PolicyRecord } from "./types.ts";

export function parsePolicyInput(input: unknown): PolicyInput {
  return parseWith(PolicyInputSchema, input, "policy");
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
    throw validationError("policy patch", [
      {
        path: ["config"],
        code: "custom",
        message: `changing type from "${existing.type}" to "${p.type}" requires a new config`,
      },
    ]);
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
