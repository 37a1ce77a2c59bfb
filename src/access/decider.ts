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
import type { AccessRequestBody } from "../policy/schemas.ts";
import type { AccessContext, Decision } from "../policy/types.ts";
import type { Principal } from "./principal.ts";
import type { AccessDecider, DecisionOutcome } from "./types.ts";

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

  /** Pure evaluation (no I/O), also used by simulate. */
  evaluate(requester: AccessContext["requester"], request: AccessRequestBody, opts: { at?: number; mode?: "enforce" | "simulate" } = {}): Decision {
    const ctx: AccessContext = {
      requester,
      resource: request.resource,
      timeRange: request.timeRange,
      purpose: request.purpose ?? null,
      mode: opts.mode ?? "enforce",
    };
    return evaluateCompiled(this.o.policies.compiled(), ctx, opts.at ?? this.o.clock.now());
  }

  async decide(principal: Principal, request: AccessRequestBody, opts: { keyCount?: number } = {}): Promise<DecisionOutcome> {
    const decision = this.evaluate({ requesterId: principal.requesterId, department: principal.department }, request);
    const id = Bun.randomUUIDv7();
    const { start, end } = request.timeRange;
    const keyCount = decision.allowed && opts.keyCount !== undefined ? opts.keyCount : null;
    const reasonCode = decision.allowed ? "GRANTED" : decision.code;
    try {
      await this.o.audit.record({
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
      // Whatever went wrong, the decision is not durable: nobody may act on it.
      if (err instanceof ServiceUnavailableError) throw err;
      throw new ServiceUnavailableError("the access decision could not be recorded", err);
    }
    return { id, decision };
  }
}
