/**
 * The engine's vocabulary: what a policy looks like once loaded, what is being asked, and the
 * decision, which is a value (never an exception) so callers audit grants and denials alike.
 */
import type { TypedConfig } from "./registry.ts";
import type { PolicyScope } from "./schemas.ts";

interface PolicyRecordBase {
  id: string;
  name: string;
  priority: number;
  enabled: boolean;
  scope: PolicyScope;
  /** Bumped on every change; decisions record it so an audit names the exact rule applied. */
  version: number;
  description?: string;
}

/** A stored policy whose config has been validated against its type (see `parsePolicyRecord`). */
export type PolicyRecord = PolicyRecordBase & TypedConfig;

export type ResourceRef = { type: "timeslice" } | { type: "token"; integration: string; userId: string };

export interface AccessContext {
  /** The authenticated requester (from the API key, never from the body). */
  requester: { requesterId: string; department?: string | null };
  resource: ResourceRef;
  /**
   * Data range judged, in epoch ms, both ends inclusive: for a time-slice grant the range the
   * material opens (whole slices), for a token read the requested range.
   */
  timeRange: { start: number; end: number };
  purpose?: string | null;
  /**
   * "enforce" (default) lists only the policies that applied; "simulate" also lists disabled and
   * out-of-scope ones with why they were skipped. The decision itself is the same in both.
   */
  mode?: "enforce" | "simulate";
}

export type DenialCode =
  /** No enabled whitelist applies to the request: denied by default. */
  | "NO_POLICY"
  /** Whitelists apply, none admits the requester. */
  | "NOT_WHITELISTED"
  /** Request made outside a time-based policy's days, hours or notBefore/notAfter. */
  | "OUTSIDE_TIME_WINDOW"
  | "DATA_TOO_OLD"
  | "FUTURE_DATA"
  | "RANGE_TOO_LONG"
  | "PURPOSE_REQUIRED"
  | "PURPOSE_TOO_SHORT"
  | "PURPOSE_NOT_ALLOWED"
  /** A stored policy the engine cannot apply (invalid config or scope, a time zone this runtime lacks): fail closed. */
  | "POLICY_MISCONFIGURED"
  /** The request names a key version that is unknown or retired (decided after admission). */
  | "KEY_UNAVAILABLE"
  /** The context itself is unusable (non-finite times, end before start). */
  | "INVALID_REQUEST";

export type Outcome =
  /** Whitelist that lists the requester. */
  | "admitted"
  /** Whitelist that does not list the requester (a denial only if no whitelist admits). */
  | "not-admitted"
  /** Restrictive policy whose conditions hold. */
  | "passed"
  | "denied"
  /** Simulate mode only: disabled or out of scope, not applied. */
  | "skipped";

export interface EvaluatedPolicy {
  id: string;
  version: number;
  outcome: Outcome;
  reason: string;
  /** Set when outcome is "denied", and on a whitelist that could not be applied. */
  code?: DenialCode;
}

export interface Grant {
  allowed: true;
  /** The highest-priority whitelist that admitted the requester. */
  policyId: string;
  policyVersion: number;
  reason: string;
  evaluated: EvaluatedPolicy[];
}

export interface Denial {
  allowed: false;
  code: DenialCode;
  policyId: string | null;
  policyVersion: number | null;
  reason: string;
  evaluated: EvaluatedPolicy[];
}

export type Decision = Grant | Denial;
