/**
 * Turns policy records into a sorted set of ready-to-run checks. Everything that does not depend
 * on the request (sorting, sets for scope lookups, parsed hours, time-zone formatters, reason
 * fragments) happens here once per policy change instead of on every request.
 */
import { formatDuration, formatInstant, quote, quoteList } from "./format.ts";
import { formatHHMM, formatLocal, isWithinHours, parseHHMM, weekdayName, zonedParts, type Weekday } from "./time.ts";
import {
  DurationLimitConfigSchema,
  PolicyScopeSchema,
  PurposeConfigSchema,
  TimeBasedConfigSchema,
  WhitelistConfigSchema,
  type DurationLimitConfig,
  type PurposeConfig,
  type TimeBasedConfig,
  type WhitelistConfig,
} from "./schemas.ts";
import type { AccessContext, DenialCode, Outcome, PolicyRecord } from "./types.ts";

export interface CheckResult {
  outcome: Exclude<Outcome, "skipped">;
  reason: string;
  code?: DenialCode;
}

export interface CompiledPolicy {
  readonly record: PolicyRecord;
  readonly isWhitelist: boolean;
  readonly resourceTypes: ReadonlySet<string> | null;
  readonly integrations: ReadonlySet<string> | null;
  readonly requesters: ReadonlySet<string> | null;
  /** A time-based policy that sets `allowFuture: true` (and compiled): lifts the default future-data denial. */
  readonly allowsFuture: boolean;
  readonly check: (ctx: AccessContext, now: number) => CheckResult;
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

const CONFIG_SCHEMAS = {
  whitelist: WhitelistConfigSchema,
  "time-based": TimeBasedConfigSchema,
  "duration-limit": DurationLimitConfigSchema,
  purpose: PurposeConfigSchema,
} as const;

/**
 * The record again through its type's schemas: a row edited by hand (a whitelist whose
 * `requesters` is a string, a scope list that is an object) must not reach a check that would
 * read it some other way. Returns the problem, or null with the parsed record.
 */
function revalidate(
  record: PolicyRecord,
): { record: PolicyRecord; problem: null } | { record: PolicyRecord; problem: string } {
  const schema = (CONFIG_SCHEMAS as Record<string, (typeof CONFIG_SCHEMAS)[keyof typeof CONFIG_SCHEMAS] | undefined>)[
    String(record.type)
  ];
  if (schema === undefined)
    return { record, problem: `has unknown type ${quote(String((record as { type: unknown }).type))}` };
  const scope = PolicyScopeSchema.safeParse(record.scope ?? {});
  if (!scope.success) return { record, problem: `has an invalid scope (${firstIssue(scope.error.issues)})` };
  const config = schema.safeParse(record.config);
  if (!config.success)
    return { record, problem: `has an invalid ${record.type} config (${firstIssue(config.error.issues)})` };
  return { record: { ...record, scope: scope.data, config: config.data } as PolicyRecord, problem: null };
}

function firstIssue(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  const i = issues[0];
  if (!i) return "rejected";
  return i.path.length > 0 ? `${i.path.map(String).join(".")}: ${i.message}` : i.message;
}

function compileOne(stored: PolicyRecord): CompiledPolicy {
  const label = `policy ${quote(String(stored.name))}`;
  const { record, problem } = revalidate(stored);
  if (problem !== null) return misconfiguredPolicy(stored, `${label} ${problem}`);
  try {
    return {
      record,
      isWhitelist: record.type === "whitelist",
      resourceTypes: toSet(record.scope?.resourceTypes),
      // Integration names are canonical lower case (SPEC v2 §4): a scope written `Gmail` is `gmail`.
      integrations: toSet(
        Array.isArray(record.scope?.integrations)
          ? record.scope.integrations.map((i: string) => String(i).toLowerCase())
          : record.scope?.integrations,
      ),
      requesters: toSet(record.scope?.requesters),
      allowsFuture: record.type === "time-based" && record.config.allowFuture === true,
      check: compileCheck(record, label),
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
  const isWhitelist = record.type === "whitelist";
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

function compileCheck(record: PolicyRecord, label: string): CompiledPolicy["check"] {
  switch (record.type) {
    case "whitelist":
      return whitelistCheck(record.config, label);
    case "time-based":
      return timeBasedCheck(record.config, label);
    case "duration-limit":
      return durationCheck(record.config, label);
    case "purpose":
      return purposeCheck(record.config, label);
  }
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

// ---------------------------------------------------------------------------------------------
// Per-type checks

function whitelistCheck(config: WhitelistConfig, label: string): CompiledPolicy["check"] {
  const requesters = new Set(config.requesters ?? []);
  const departments = new Set(config.departments ?? []);
  return (ctx) => {
    const { requesterId, department } = ctx.requester;
    if (requesters.has(requesterId)) {
      return { outcome: "admitted", reason: `requester ${quote(requesterId)} is listed by ${label}` };
    }
    if (department != null && departments.has(department)) {
      return {
        outcome: "admitted",
        reason: `requester ${quote(requesterId)} is admitted by ${label} through department ${quote(department)}`,
      };
    }
    return { outcome: "not-admitted", reason: `${describeRequester(ctx)} is not admitted by ${label}` };
  };
}

export function describeRequester(ctx: AccessContext): string {
  const { requesterId, department } = ctx.requester;
  return department != null && department !== ""
    ? `requester ${quote(requesterId)} (department ${quote(department)})`
    : `requester ${quote(requesterId)}`;
}

function timeBasedCheck(config: TimeBasedConfig, label: string): CompiledPolicy["check"] {
  const tz = config.timezone;
  // Builds and caches the zone's formatter now; throws (→ misconfigured) for an unknown zone.
  zonedParts(0, tz);
  const days: ReadonlySet<Weekday> | null = config.days ? new Set(config.days) : null;
  const daysText = config.days?.join(", ") ?? "";
  const from = config.hours ? parseHHMM(config.hours.from) : null;
  const to = config.hours ? parseHHMM(config.hours.to) : null;
  if (config.hours && (from === null || to === null))
    throw new Error(`malformed hours ${JSON.stringify(config.hours)}`);
  const windowText = from !== null && to !== null ? `${formatHHMM(from)}–${formatHHMM(to)}` : "";
  const { notBefore, notAfter, maxDataAgeSeconds } = config;
  const maxAgeMs = maxDataAgeSeconds === undefined ? null : maxDataAgeSeconds * 1000;
  const allowFuture = config.allowFuture === true;
  const needsClock = days !== null || from !== null;

  return (ctx, now) => {
    if (notBefore !== undefined && now < notBefore) {
      return deny(
        "OUTSIDE_TIME_WINDOW",
        `request at ${formatInstant(now)} is before ${formatInstant(notBefore)}, when ${label} starts admitting requests`,
      );
    }
    if (notAfter !== undefined && now > notAfter) {
      return deny(
        "OUTSIDE_TIME_WINDOW",
        `request at ${formatInstant(now)} is after ${formatInstant(notAfter)}, when ${label} stopped admitting requests`,
      );
    }
    if (needsClock) {
      const local = zonedParts(now, tz);
      if (days !== null && !days.has(local.weekday)) {
        return deny(
          "OUTSIDE_TIME_WINDOW",
          `request on ${weekdayName(local.weekday)} (${formatLocal(local)} ${tz}) is not on an allowed day (${daysText}) (${label})`,
        );
      }
      if (from !== null && to !== null && !isWithinHours(local.minutesOfDay, from, to)) {
        return deny(
          "OUTSIDE_TIME_WINDOW",
          `request at ${formatHHMM(local.minutesOfDay)} ${tz} is outside ${windowText} (${label})`,
        );
      }
    }
    const { start, end } = ctx.timeRange;
    if (maxAgeMs !== null && start < now - maxAgeMs) {
      return deny(
        "DATA_TOO_OLD",
        `requested data from ${formatInstant(start)} is older than the ${formatDuration(maxAgeMs)} ${label} allows (earliest ${formatInstant(now - maxAgeMs)})`,
      );
    }
    if (!allowFuture && end > now) {
      return deny(
        "FUTURE_DATA",
        `requested data up to ${formatInstant(end)} lies after the request time ${formatInstant(now)}, and ${label} does not allow future data`,
      );
    }
    return { outcome: "passed", reason: `request time and data range are within ${label}` };
  };
}

function durationCheck(config: DurationLimitConfig, label: string): CompiledPolicy["check"] {
  const maxMs = config.maxSeconds * 1000;
  const limitText = formatDuration(maxMs);
  return (ctx) => {
    const length = ctx.timeRange.end - ctx.timeRange.start;
    // `!(x <= y)` rather than `x > y`, so a NaN length denies.
    if (!(length <= maxMs)) {
      return deny(
        "RANGE_TOO_LONG",
        `requested range of ${formatDuration(length)} exceeds the ${limitText} limit (${label})`,
      );
    }
    return {
      outcome: "passed",
      reason: `requested range of ${formatDuration(length)} is within the ${limitText} limit (${label})`,
    };
  };
}

function purposeCheck(config: PurposeConfig, label: string): CompiledPolicy["check"] {
  const allowed = config.allowed ? new Set(config.allowed) : null;
  const allowedText = config.allowed ? quoteList(config.allowed) : "";
  const minLength = config.minLength ?? 1;
  return (ctx) => {
    const purpose = typeof ctx.purpose === "string" ? ctx.purpose.trim() : "";
    if (purpose === "") return deny("PURPOSE_REQUIRED", `a purpose is required (${label})`);
    if (purpose.length < minLength) {
      return deny(
        "PURPOSE_TOO_SHORT",
        `purpose must be at least ${minLength} characters, got ${purpose.length} (${label})`,
      );
    }
    if (allowed !== null && !allowed.has(purpose)) {
      return deny("PURPOSE_NOT_ALLOWED", `purpose ${quote(purpose)} is not one of ${allowedText} (${label})`);
    }
    return { outcome: "passed", reason: `purpose ${quote(purpose)} satisfies ${label}` };
  };
}

function deny(code: DenialCode, reason: string): CheckResult {
  return { outcome: "denied", code, reason };
}
