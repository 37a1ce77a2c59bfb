/** The policy layer's public surface: schemas, the type registry, parsing, time helpers and the decision engine. */
export * from "./schemas.ts";
export * from "./parse.ts";
export * from "./types.ts";
export { POLICY_TYPE_MODULES, policyTypeCatalog, policyTypeModule, type TypedConfig } from "./registry.ts";
export { definePolicyType, type Check, type CheckResult, type PolicyTypeModule } from "./type-module.ts";
export { WhitelistConfigSchema, type WhitelistConfig } from "./types/whitelist.ts";
export { HoursSchema, TimeBasedConfigSchema, type TimeBasedConfig } from "./types/time-based.ts";
export { DurationLimitConfigSchema, type DurationLimitConfig } from "./types/duration-limit.ts";
export { PurposeConfigSchema, type PurposeConfig } from "./types/purpose.ts";
export { PurposeDenylistConfigSchema, type PurposeDenylistConfig } from "./types/purpose-denylist.ts";
export { compilePolicies, comparePolicies, type CompiledPolicy, type CompiledPolicySet } from "./compile.ts";
export { evaluate, evaluateCompiled } from "./engine.ts";
export {
  WEEKDAYS,
  canonicalTimeZone,
  formatHHMM,
  isWithinHours,
  parseHHMM,
  zonedParts,
  type Weekday,
  type ZonedParts,
} from "./time.ts";
