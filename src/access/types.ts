/** The access-decision contract: every token read and time-slice grant goes through it. */
import type { Principal } from "./principal.ts";
import type { Decision } from "../policy/types.ts";
import type { AccessRequestBody } from "./request-body.ts";

export interface DecisionOutcome {
  /** access_requests row id (also in the audit row's details). */
  id: string;
  decision: Decision;
}

export interface DecideOptions {
  /** Recorded as keyCount on a grant. */
  keyCount?: number;
  /** The data range a grant would open (whole slices); judged instead of the requested range. */
  covered?: { start: number; end: number };
  /** Why no grant can be issued whatever the policies say (unknown or retired key version). */
  unavailable?: string;
}

/** A decision taken and on its way to the audit log: nobody may act on it before `durable` resolves. */
export interface PendingDecision extends DecisionOutcome {
  /** Resolves once the rows are committed; rejects with ServiceUnavailableError if they could not be. */
  durable: Promise<void>;
}

export interface AccessDecider {
  /**
   * Evaluates the request against the cached policies, then durably records the access_requests
   * row and exactly one ACCESS_GRANTED / ACCESS_DENIED audit row before resolving.
   * Rejects with ServiceUnavailableError if that could not be made durable.
   */
  decide(principal: Principal, request: AccessRequestBody, opts?: DecideOptions): Promise<DecisionOutcome>;
  /**
   * `decide` in two steps: evaluates now and starts the write, so that a caller can prepare its
   * answer while the rows are committed — and release it only once `durable` resolves.
   */
  begin(principal: Principal, request: AccessRequestBody, opts?: DecideOptions): PendingDecision;
}
