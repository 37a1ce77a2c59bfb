/**
 * The access decision as a service: evaluates a request against the cached compiled policies at
 * `clock.now()`, then makes the decision durable — the access_requests row and exactly one
 * ACCESS_GRANTED / ACCESS_DENIED audit row, in one transaction — before anyone acts on it.
 */
import type { AuditSink } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import { ServiceUnavailableError } from "../errors.ts";
import type { CompiledPolicySet } from "../policy/compile.ts";
import { evaluateCompiled } from "../policy/engine.ts";
import type { AccessRequestBody } from "./request-body.ts";
import type { AccessContext, Decision } from "../policy/types.ts";
import type { Principal } from "./principal.ts";
import type { AccessDecider, DecideOptions, DecisionOutcome, PendingDecision } from "./types.ts";

export interface PolicySource {
  compiled(): CompiledPolicySet;
}

export interface DeciderOptions {
  policies: PolicySource;
  audit: AuditSink;
  clock: Clock;
}

/** The audit target naming what was asked for. */
export function resourceTarget(resource: AccessRequestBody["resource"]): string {
  return resource.type === "token" ? `token:${resource.integration}:${resource.userId}` : "timeslice";
}

export class PolicyAccessDecider implements AccessDecider {
  constructor(private readonly o: DeciderOptions) {}

  /**
   * Pure evaluation (no I/O), also used by simulate. `judge.covered` is the range the policies
   * judge (what a grant would open; default: the requested range); `judge.unavailable` turns a
   * decision that would grant into a KEY_UNAVAILABLE denial.
   */
  evaluate(
    requester: AccessContext["requester"],
    request: AccessRequestBody,
    opts: { at?: number; mode?: "enforce" | "simulate" } & DecideOptions = {},
  ): Decision {
    const ctx: AccessContext = {
      requester,
      resource: request.resource,
      timeRange: opts.covered ?? request.timeRange,
      purpose: request.purpose ?? null,
      mode: opts.mode ?? "enforce",
    };
    const decision = evaluateCompiled(this.o.policies.compiled(), ctx, opts.at ?? this.o.clock.now());
    // Only after admission and the policies: a requester no whitelist admits learns nothing about versions.
    if (decision.allowed && opts.unavailable !== undefined) {
      return {
        allowed: false,
        code: "KEY_UNAVAILABLE",
        policyId: null,
        policyVersion: null,
        reason: opts.unavailable,
        evaluated: decision.evaluated,
      };
    }
    return decision;
  }

  async decide(principal: Principal, request: AccessRequestBody, opts: DecideOptions = {}): Promise<DecisionOutcome> {
    const { id, decision, durable } = this.begin(principal, request, opts);
    await durable;
    return { id, decision };
  }

  begin(principal: Principal, request: AccessRequestBody, opts: DecideOptions = {}): PendingDecision {
    const decision = this.evaluate(
      { requesterId: principal.requesterId, department: principal.department },
      request,
      opts,
    );
    const id = Bun.randomUUIDv7();
    // The rows record what was judged (and, for a grant, released); the request as asked is in details.
    const { start, end } = opts.covered ?? request.timeRange;
    const requested = opts.covered
      ? { requestedRange: { start: request.timeRange.start, end: request.timeRange.end } }
      : {};
    const keyCount = decision.allowed && opts.keyCount !== undefined ? opts.keyCount : null;
    const reasonCode = decision.allowed ? "GRANTED" : decision.code;
    let written: Promise<unknown>;
    try {
      written = this.o.audit.record({
        event: {
          eventType: decision.allowed ? "ACCESS_GRANTED" : "ACCESS_DENIED",
          actor: principal.requesterId,
          target: resourceTarget(request.resource),
          startTime: start,
          endTime: end,
          success: decision.allowed,
          details: {
            accessRequestId: id,
            resource: request.resource,
            purpose: request.purpose ?? null,
            ...requested,
            ...(request.keyVersion !== undefined ? { keyVersion: request.keyVersion } : {}),
            policyId: decision.policyId,
            policyVersion: decision.policyVersion,
            reasonCode,
            reason: decision.reason,
            keyId: principal.keyId,
            ...(keyCount !== null ? { keyCount } : {}),
          },
        },
        accessRequest: {
          id,
          requesterId: principal.requesterId,
          resourceType: request.resource.type,
          resource: request.resource,
          startTime: new Date(start),
          endTime: new Date(end),
          purpose: request.purpose ?? null,
          granted: decision.allowed,
          denialReason: decision.allowed ? null : decision.reason,
          policyIds: decision.evaluated.map((e) => e.id),
          policyId: decision.policyId,
          keyCount,
        },
      });
    } catch (err) {
      written = Promise.reject(err);
    }
    const durable = written.then(
      () => undefined,
      (err) => {
        // Whatever went wrong, the decision is not durable: nobody may act on it.
        if (err instanceof ServiceUnavailableError) throw err;
        throw new ServiceUnavailableError("the access decision could not be recorded", err);
      },
    );
    return { id, decision, durable };
  }
}
