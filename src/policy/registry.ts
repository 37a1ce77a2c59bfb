/**
 * The policy types, listed once. Adding a type is one module under `types/` and one line here;
 * the type list, the input schema (so validation and OpenAPI), the compile dispatch, stored-row
 * revalidation and the console's editor (through GET /v1/policy-types) all derive from this list.
 */
import { z } from "zod";
import type { PolicyTypeModule } from "./type-module.ts";
import { durationLimit } from "./types/duration-limit.ts";
import { purposeDenylist } from "./types/purpose-denylist.ts";
import { purpose } from "./types/purpose.ts";
import { timeBased } from "./types/time-based.ts";
import { whitelist } from "./types/whitelist.ts";

export const POLICY_TYPE_MODULES = [whitelist, timeBased, durationLimit, purpose, purposeDenylist] as const;

type Modules = typeof POLICY_TYPE_MODULES;
type Module = Modules[number];

export type PolicyType = Module["type"];
export const POLICY_TYPES = POLICY_TYPE_MODULES.map((m) => m.type) as unknown as readonly [PolicyType, ...PolicyType[]];

/** `{ type, config }` per registered type: the part of a policy that varies with its type. */
export type TypedConfig = Module extends infer M
  ? M extends PolicyTypeModule<infer T, infer S>
    ? { type: T; config: z.output<S> }
    : never
  : never;
export type TypedConfigRaw = Module extends infer M
  ? M extends PolicyTypeModule<infer T, infer S>
    ? { type: T; config: z.input<S> }
    : never
  : never;

export const typeListText = POLICY_TYPES.map((t) => `"${t}"`).join(", ");

export const PolicyTypeSchema = z.enum(POLICY_TYPES, { error: `type must be one of ${typeListText}` });

const byType = new Map<string, PolicyTypeModule>(POLICY_TYPE_MODULES.map((m) => [m.type, m as PolicyTypeModule]));

/** The module for a type name, or undefined for a name no module registers (e.g. a hand-edited row). */
export function policyTypeModule(type: unknown): PolicyTypeModule | undefined {
  return typeof type === "string" ? byType.get(type) : undefined;
}

/** What the console's editor needs per type (GET /v1/policy-types). */
export function policyTypeCatalog(): { type: PolicyType; summary: string; example: unknown }[] {
  return POLICY_TYPE_MODULES.map((m) => ({ type: m.type, summary: m.summary, example: m.example }));
}
