/**
 * The access decision (SPEC §5): deny by default; grant only when an in-scope whitelist admits
 * the requester and no in-scope policy denies. Pure: `now` is an argument, nothing is read from
 * the outside world, and the answer is a value even for malformed input.
 */
import { compilePolicies, inScope, scopeMismatch, type CompiledPolicy, type CompiledPolicySet } from "./compile.ts";
import { describeRequester, formatInstant, quote } from "./format.ts";
import type { AccessContext, Decision, DenialCode, EvaluatedPolicy, PolicyRecord } from "./types.ts";

/** One-shot form; a service evaluating many requests should keep `compilePolicies(...)` around. */
export function evaluate(policies: readonly PolicyRecord[], request: AccessContext, now: number): Decision {
  return evaluateCompiled(compilePolicies(policies), request, now);
}

/**
 * Decides in two stages, though every in-scope policy is evaluated (and listed) in both cases:
 *
 * 1. Admission. If no whitelist in scope admits the requester, the decision is NO_POLICY (no
 *    whitelist in scope at all; policyId null) or NOT_WHITELISTED naming the highest-priority
 *    whitelist in scope — whatever the other policies say. A requester who may never have access
 *    should not be told "outside business hours", which suggests retrying later would help and
 *    discloses the schedule to someone with no business knowing it.
 * 2. Restriction. Otherwise the highest-priority denying policy decides; with none, data times
 *    after `now` are denied (FUTURE_DATA, no policy) unless an enabled time-based policy in scope
 *    sets allowFuture: true; otherwise the grant names the highest-priority admitting whitelist.
 *
 * `ctx.timeRange` is what is judged: for a time-slice grant, the data time the material opens
 * (`covered`, whole slices), not the range that was asked for.
 */
export function evaluateCompiled(compiled: CompiledPolicySet, ctx: AccessContext, now: number): Decision {
  const invalid = invalidContext(ctx, now);
  if (invalid !== null) return denial("INVALID_REQUEST", null, invalid, []);

  const simulate = ctx.mode === "simulate";
  const evaluated: EvaluatedPolicy[] = [];
  let firstWhitelist: CompiledPolicy | null = null;
  let firstWhitelistBroken = "";
  let futureAllowed = false;
  let firstAdmit: CompiledPolicy | null = null;
  let admitReason = "";
  let firstDeny: CompiledPolicy | null = null;
  let denyCode: DenialCode = "NO_POLICY";
  let denyReason = "";

  for (const p of simulate ? compiled.all : compiled.enabled) {
    const { id, version } = p.record;
    if (simulate) {
      const skip = p.record.enabled ? scopeMismatch(p, ctx) : "disabled";
      if (skip !== null) {
        evaluated.push({ id, version, outcome: "skipped", reason: `${policyLabel(p)} skipped: ${skip}` });
        continue;
      }
    } else if (!inScope(p, ctx)) {
      continue;
    }

    if (p.allowsFuture) futureAllowed = true;
    const r = p.check(ctx, now);
    const entry: EvaluatedPolicy = { id, version, outcome: r.outcome, reason: r.reason };
    if (r.code !== undefined) entry.code = r.code;
    evaluated.push(entry);

    if (p.isWhitelist) {
      if (firstWhitelist === null) {
        firstWhitelist = p;
        if (r.code === "POLICY_MISCONFIGURED") firstWhitelistBroken = r.reason;
      }
      if (r.outcome === "admitted" && firstAdmit === null) {
        firstAdmit = p;
        admitReason = r.reason;
      }
    }
    // A whitelist that could not be compiled denies (fail closed), like any broken policy.
    if (r.outcome === "denied" && firstDeny === null) {
      firstDeny = p;
      denyCode = r.code ?? "POLICY_MISCONFIGURED";
      denyReason = r.reason;
    }
  }

  if (firstAdmit === null) {
    if (firstWhitelist === null) {
      return denial(
        "NO_POLICY",
        null,
        `no enabled whitelist applies to this ${ctx.resource.type} request by ${quote(ctx.requester.requesterId)}; access is denied by default`,
        evaluated,
      );
    }
    // If the whitelist to report is one that could not be applied, say that, not "not listed".
    if (firstWhitelistBroken !== "")
      return denial("POLICY_MISCONFIGURED", firstWhitelist, firstWhitelistBroken, evaluated);
    return denial(
      "NOT_WHITELISTED",
      firstWhitelist,
      `${describeRequester(ctx)} is not admitted by any whitelist that applies (highest priority: ${policyLabel(firstWhitelist)})`,
      evaluated,
    );
  }
  if (firstDeny !== null) return denial(denyCode, firstDeny, denyReason, evaluated);
  // Data times after the request are denied by default, not only where a time-based policy says
  // so: only an enabled time-based policy in scope with allowFuture: true lifts it.
  if (ctx.timeRange.end > now && !futureAllowed) {
    return denial(
      "FUTURE_DATA",
      null,
      `requested data up to ${formatInstant(ctx.timeRange.end)} lies after the request time ${formatInstant(now)}; future data is denied unless an enabled time-based policy that applies sets allowFuture: true`,
      evaluated,
    );
  }
  return {
    allowed: true,
    policyId: firstAdmit.record.id,
    policyVersion: firstAdmit.record.version,
    reason: `${admitReason}, and no policy that applies denies the request`,
    evaluated,
  };
}

function denial(code: DenialCode, p: CompiledPolicy | null, reason: string, evaluated: EvaluatedPolicy[]): Decision {
  return {
    allowed: false,
    code,
    policyId: p?.record.id ?? null,
    policyVersion: p?.record.version ?? null,
    reason,
    evaluated,
  };
}

function policyLabel(p: CompiledPolicy): string {
  return `policy ${quote(p.record.name)}`;
}

/**
 * The HTTP layer validates bodies with `AccessRequestBodySchema`; this is the engine's own
 * last line, so that a caller bug becomes a denial instead of a grant or a crash.
 */
function invalidContext(ctx: AccessContext, now: number): string | null {
  if (!Number.isFinite(now)) return "the evaluation time is not a finite number";
  if (typeof ctx?.requester?.requesterId !== "string" || ctx.requester.requesterId === "")
    return "the request has no requester";
  const r = ctx.resource;
  if (r?.type === "token") {
    if (typeof r.integration !== "string" || typeof r.userId !== "string")
      return "the token resource lacks integration or userId";
  } else if (r?.type !== "timeslice") {
    return "the resource type is neither token nor timeslice";
  }
  const start = ctx.timeRange?.start;
  const end = ctx.timeRange?.end;
  if (typeof start !== "number" || typeof end !== "number" || !Number.isFinite(start) || !Number.isFinite(end)) {
    return "the time range is not a pair of finite epoch-millisecond values";
  }
  if (end < start) return "the time range ends before it starts";
  return null;
}
