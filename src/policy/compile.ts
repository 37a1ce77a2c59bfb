/**
 * Turns policy records into a sorted set of ready-to-run checks. Everything that does not depend
 * on the request (sorting, sets for scope lookups, and each type's own `compile` step: parsed
 * hours, time-zone formatters, reason fragments) happens once per policy change instead of on
 * every request.
 */
import { quote, quoteList } from "./format.ts";
import { policyTypeModule } from "./registry.ts";
import { PolicyScopeSchema } from "./schemas.ts";
import type { Check, CheckResult, PolicyTypeModule } from "./type-module.ts";
import type { AccessContext, PolicyRecord } from "./types.ts";

export type { CheckResult } from "./type-module.ts";

export interface CompiledPolicy {
  readonly record: PolicyRecord;
  readonly isWhitelist: boolean;
  readonly resourceTypes: ReadonlySet<string> | null;
  readonly integrations: ReadonlySet<string> | null;
  readonly requesters: ReadonlySet<string> | null;
  /** Lifts the default future-data denial (a time-based policy with `allowFuture: true`, compiled). */
  readonly allowsFuture: boolean;
  readonly check: Check;
}

export interface CompiledPolicySet {
  /** Every policy, in evaluation order (for simulate mode). */
  readonly all: readonly CompiledPolicy[];
  /** Enabled policies only, in evaluation order: the hot path never looks at disabled ones. */
  readonly enabled: readonly CompiledPolicy[];
}

/**
 * Evaluation order: priority descending, then name, then id (plain code-unit comparison, not
 * locale-aware, so the order is the same on every machine). The order decides which policy a
 * decision names, so it must not depend on the order rows came back from the database.
 */
export function comparePolicies(a: PolicyRecord, b: PolicyRecord): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return 0;
}

/**
 * Never throws: a policy that cannot be applied compiles to one that fails closed (see
 * `misconfigured`), so one bad row cannot stop every decision.
 */
export function compilePolicies(records: readonly PolicyRecord[]): CompiledPolicySet {
  const all = [...records].sort(comparePolicies).map(compileOne);
  return { all, enabled: all.filter((p) => p.record.enabled) };
}

/**
 * The record again through its type's schemas: a row edited by hand (a whitelist whose
 * `requesters` is a string, a scope list that is an object) must not reach a check that would
 * read it some other way. Returns the problem, or null with the parsed record.
 */
function revalidate(
  record: PolicyRecord,
): { record: PolicyRecord; module: PolicyTypeModule; problem: null } | { problem: string } {
  const module = policyTypeModule(record.type);
  if (module === undefined) return { problem: `has unknown type ${quote(String((record as { type: unknown }).type))}` };
  const scope = PolicyScopeSchema.safeParse(record.scope ?? {});
  if (!scope.success) return { problem: `has an invalid scope (${firstIssue(scope.error.issues)})` };
  const config = module.config.safeParse(record.config);
  if (!config.success) return { problem: `has an invalid ${record.type} config (${firstIssue(config.error.issues)})` };
  return { record: { ...record, scope: scope.data, config: config.data } as PolicyRecord, module, problem: null };
}

function firstIssue(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  const i = issues[0];
  if (!i) return "rejected";
  return i.path.length > 0 ? `${i.path.map(String).join(".")}: ${i.message}` : i.message;
}

function compileOne(stored: PolicyRecord): CompiledPolicy {
  const label = `policy ${quote(String(stored.name))}`;
  const valid = revalidate(stored);
  if (valid.problem !== null) return misconfiguredPolicy(stored, `${label} ${valid.problem}`);
  const { record, module } = valid;
  try {
    return {
      record,
      isWhitelist: module.role === "whitelist",
      resourceTypes: toSet(record.scope?.resourceTypes),
      // Integration names are canonical lower case (SPEC v2 §4): a scope written `Gmail` is `gmail`.
      integrations: toSet(
        Array.isArray(record.scope?.integrations)
          ? record.scope.integrations.map((i: string) => String(i).toLowerCase())
          : record.scope?.integrations,
      ),
      requesters: toSet(record.scope?.requesters),
      allowsFuture: module.allowsFuture?.(record.config) === true,
      check: module.compile(record.config, label),
    };
  } catch (err) {
    // E.g. a time zone this runtime lacks the data for.
    return misconfiguredPolicy(
      stored,
      `${label} cannot be applied (${err instanceof Error ? err.message : String(err)})`,
    );
  }
}

/**
 * Fail closed: a policy that cannot be applied — whitelists included — compiles to an unscoped
 * deny with POLICY_MISCONFIGURED, so one bad row is loud and never admits anyone. A broken
 * whitelist admits no one and denies requests other whitelists admit.
 */
function misconfiguredPolicy(record: PolicyRecord, reason: string): CompiledPolicy {
  const result: CheckResult = { outcome: "denied", code: "POLICY_MISCONFIGURED", reason: `${reason}; denying` };
  const isWhitelist = policyTypeModule(record.type)?.role === "whitelist";
  return {
    record,
    isWhitelist,
    resourceTypes: null,
    integrations: null,
    requesters: null,
    allowsFuture: false,
    check: () => result,
  };
}

function toSet(values: readonly string[] | undefined): ReadonlySet<string> | null {
  if (values === undefined) return null;
  if (!Array.isArray(values)) throw new TypeError("scope lists must be arrays");
  return new Set(values);
}

/** Why `p` does not apply to `ctx`, or null when it does. */
export function scopeMismatch(p: CompiledPolicy, ctx: AccessContext): string | null {
  const { resource, requester } = ctx;
  if (p.resourceTypes !== null && !p.resourceTypes.has(resource.type)) {
    return `scoped to resource types ${quoteList([...p.resourceTypes])}, not ${quote(resource.type)}`;
  }
  if (p.integrations !== null) {
    if (resource.type !== "token") return `scoped to integrations, which ${resource.type} requests do not have`;
    if (!p.integrations.has(resource.integration.toLowerCase())) {
      return `scoped to integrations ${quoteList([...p.integrations])}, not ${quote(resource.integration)}`;
    }
  }
  if (p.requesters !== null && !p.requesters.has(requester.requesterId)) {
    return `scoped to requesters ${quoteList([...p.requesters])}, not ${quote(requester.requesterId)}`;
  }
  return null;
}

/** Allocation-free form of `scopeMismatch(p, ctx) === null`, for the hot path. */
export function inScope(p: CompiledPolicy, ctx: AccessContext): boolean {
  const { resource } = ctx;
  if (p.resourceTypes !== null && !p.resourceTypes.has(resource.type)) return false;
  if (p.integrations !== null && (resource.type !== "token" || !p.integrations.has(resource.integration.toLowerCase())))
    return false;
  if (p.requesters !== null && !p.requesters.has(ctx.requester.requesterId)) return false;
  return true;
}
