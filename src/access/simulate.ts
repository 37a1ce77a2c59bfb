/**
 * `POST /v1/policies/simulate`: what a request would get, and why, for any requester — evaluated
 * with every policy listed (skipped ones with the reason). Nothing is granted, no key material is
 * derived and no access_requests row is written (it is not an access request); the simulation
 * itself is audited as ACCESS_SIMULATED.
 */
import { z } from "zod";
import type { AuditSink } from "../audit/types.ts";
import type { KeyService } from "../keys/types.ts";
import { InstantSchema, identifier, text } from "../lib/schemas.ts";
import { AccessRequestBodySchema } from "./request-body.ts";
import type { Decision, EvaluatedPolicy } from "../policy/types.ts";
import { CryptoInputError } from "../crypto/errors.ts";
import { ValidationError } from "../errors.ts";
import { resourceTarget, type PolicyAccessDecider } from "./decider.ts";
import { planOrUnavailable } from "./grants.ts";
import type { DecideOptions } from "./types.ts";
import type { RequesterService } from "./requesters.ts";

export const SimulateBodySchema = z.strictObject({
  ...AccessRequestBodySchema.shape,
  requesterId: identifier("requesterId").describe("External requester id to simulate for (need not exist)"),
  department: text("department", 128).nullable().optional().describe("Overrides the stored requester's department"),
  at: InstantSchema.optional().describe("Evaluate as if the request were made at this instant (default: now)"),
});
export type SimulateBody = z.output<typeof SimulateBodySchema>;

export interface SimulationResult {
  granted: boolean;
  policyId: string | null;
  policyVersion: number | null;
  reason: string;
  reasonCode: string;
  requester: { requesterId: string; department: string | null; exists: boolean };
  evaluated: EvaluatedPolicy[];
  /** For timeslice requests: what a grant would cover (no key material). */
  slices?: {
    keyVersion: number;
    sliceSeconds: number;
    from: number;
    to: number;
    keyCount: number;
    seedCount: number;
    covered: { start: string; end: string };
  };
}

export class SimulationService {
  constructor(
    private readonly o: {
      decider: PolicyAccessDecider;
      requesters: RequesterService;
      keys: KeyService;
      audit: AuditSink;
    },
  ) {}

  async simulate(body: SimulateBody, actor: string): Promise<SimulationResult> {
    const stored = await this.o.requesters.findByRequesterId(body.requesterId);
    const department = body.department !== undefined ? body.department : (stored?.department ?? null);
    const { requesterId, department: _d, at, ...request } = body;
    // Judged as the real request would be: on the slices a grant would open.
    let slices: SimulationResult["slices"];
    let judge: DecideOptions = {};
    if (request.resource.type === "timeslice") {
      try {
        const p = await planOrUnavailable(this.o.keys, request.timeRange, request.keyVersion);
        if ("unavailable" in p) judge = { unavailable: p.unavailable };
        else {
          judge = { covered: p.covered };
          slices = {
            keyVersion: p.version.version,
            sliceSeconds: p.version.sliceSeconds,
            from: p.from,
            to: p.to,
            keyCount: p.keyCount,
            seedCount: p.seedCount,
            covered: { start: new Date(p.covered.start).toISOString(), end: new Date(p.covered.end).toISOString() },
          };
        }
      } catch (err) {
        if (!(err instanceof ValidationError) && !(err instanceof CryptoInputError)) throw err;
      }
    }
    const decision: Decision = this.o.decider.evaluate({ requesterId, department }, request, {
      mode: "simulate",
      ...(at !== undefined ? { at } : {}),
      ...judge,
    });
    const reasonCode = decision.allowed ? "GRANTED" : decision.code;
    await this.o.audit.record({
      eventType: "ACCESS_SIMULATED",
      actor,
      target: resourceTarget(request.resource),
      startTime: request.timeRange.start,
      endTime: request.timeRange.end,
      success: true,
      details: {
        requesterId,
        department,
        resource: request.resource,
        purpose: request.purpose ?? null,
        ...(at !== undefined ? { at } : {}),
        wouldGrant: decision.allowed,
        policyId: decision.policyId,
        policyVersion: decision.policyVersion,
        reasonCode,
      },
    });
    return {
      granted: decision.allowed,
      policyId: decision.policyId,
      policyVersion: decision.policyVersion,
      reason: decision.reason,
      reasonCode,
      requester: { requesterId, department, exists: stored !== null },
      evaluated: decision.evaluated,
      ...(slices ? { slices } : {}),
    };
  }
}
