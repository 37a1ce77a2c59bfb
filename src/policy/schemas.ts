/**
 * Zod schemas for policies (SPEC §5): the input with its config validated per type (the types
 * come from `registry.ts`), and the patch. Every object is strict, so unknown fields are
 * rejected, not dropped.
 */
import { z } from "zod";
import { identifier, list, text } from "../lib/schemas.ts";
import {
  POLICY_TYPE_MODULES,
  PolicyTypeSchema,
  typeListText,
  type TypedConfig,
  type TypedConfigRaw,
} from "./registry.ts";

export { POLICY_TYPES, PolicyTypeSchema, type PolicyType } from "./registry.ts";

export const RESOURCE_TYPES = ["token", "timeslice"] as const;
export const ResourceTypeSchema = z.enum(RESOURCE_TYPES, {
  error: 'resource type must be "token" or "timeslice"',
});

export const PolicyScopeSchema = z
  .strictObject({
    resourceTypes: list(ResourceTypeSchema, "scope.resourceTypes")
      .optional()
      .describe("Resource types the policy applies to; omitted = all"),
    integrations: list(identifier("integration"), "scope.integrations")
      .optional()
      .describe(
        "Token integrations the policy applies to; omitted = all. A policy scoped to integrations never applies to timeslice requests",
      ),
    requesters: list(identifier("requester id"), "scope.requesters")
      .optional()
      .describe("External requester ids the policy applies to; omitted = all"),
  })
  .describe("Which requests the policy applies to: every listed dimension must match");

const policyName = text("name", 128).describe("Unique, human-readable policy name");
const description = text("description", 1000, 0);

/**
 * Defaults, applied on create: priority 0, enabled true, scope {} (applies to every request). A
 * new policy is live at once, as in Vault and AWS; send enabled: false to stage one.
 */
const policyBase = {
  name: policyName,
  priority: z
    .number({ error: "priority must be a number" })
    .int({ error: "priority must be an integer" })
    .min(-1_000_000, { error: "priority must be at least -1000000" })
    .max(1_000_000, { error: "priority must be at most 1000000" })
    .default(0)
    .describe("Higher is evaluated first and wins when reporting the deciding policy"),
  enabled: z.boolean({ error: "enabled must be true or false" }).default(true),
  scope: PolicyScopeSchema.default({}),
  description: description.optional(),
};
const PolicyBaseSchema = z.strictObject(policyBase);

/** A validated policy, defaults applied and instants normalised to epoch ms. */
export type PolicyInput = z.output<typeof PolicyBaseSchema> & TypedConfig;
/** What a client may send (defaults optional, instants as strings or numbers). */
export type PolicyInputRaw = z.input<typeof PolicyBaseSchema> & TypedConfigRaw;

const variants = POLICY_TYPE_MODULES.map((m) =>
  z.strictObject({ ...policyBase, type: z.literal(m.type), config: m.config }),
) as unknown as [z.ZodObject, ...z.ZodObject[]];

// The union is built from a list, so zod cannot infer its output; the cast names it from the registry.
export const PolicyInputSchema = z
  .discriminatedUnion("type", variants, { error: `type must be one of ${typeListText}` })
  .describe("A policy; config is validated against its type") as unknown as z.ZodType<PolicyInput, PolicyInputRaw>;

/**
 * PATCH body: any subset of the policy fields, merged shallowly by `applyPolicyPatch` (scope and
 * config are replaced whole, never deep-merged). `config` is checked there, against the
 * resulting type; `description: null` clears the description.
 */
export const PolicyPatchSchema = z
  .strictObject({
    name: policyName.optional(),
    type: PolicyTypeSchema.optional(),
    priority: policyBase.priority.unwrap().optional(),
    enabled: z.boolean({ error: "enabled must be true or false" }).optional(),
    scope: PolicyScopeSchema.optional(),
    config: z.unknown().optional().describe("Replaces the config; validated against the policy's (new) type"),
    description: description.nullable().optional(),
  })
  .refine((p) => Object.values(p).some((v) => v !== undefined), {
    error: "a policy patch must change at least one field",
  })
  .describe("Partial policy update");

export type ResourceType = z.infer<typeof ResourceTypeSchema>;
export type PolicyScope = z.output<typeof PolicyScopeSchema>;
export type PolicyPatch = z.output<typeof PolicyPatchSchema>;
