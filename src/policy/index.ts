/** The policy layer's public surface: schemas, parsing, time helpers and the decision engine. */
export * from "./schemas.ts";
export * from "./parse.ts";
export * from "./types.ts";
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
