/** Builders shared by the policy tests: validated records and request contexts with defaults. */
import {
  parsePolicyInput,
  type AccessContext,
  type PolicyInputRaw,
  type PolicyRecord,
} from "../../src/policy/index.ts";

export type PolicySpec = PolicyInputRaw & { id: string; version?: number };

/** A record as the service would load it: validated through the real schema. */
export function policy(spec: PolicySpec): PolicyRecord {
  const { id, version, ...input } = spec;
  return { ...parsePolicyInput(input), id, version: version ?? 1 };
}

export const HOUR = 3_600_000;
/** Tuesday 2026-03-10 15:00Z (11:00 in New York). */
export const NOW = Date.UTC(2026, 2, 10, 15, 0);

export function ctx(over: Partial<AccessContext> = {}): AccessContext {
  return {
    requester: { requesterId: "alice", department: "eng" },
    resource: { type: "timeslice" },
    timeRange: { start: NOW - HOUR, end: NOW },
    ...over,
  };
}

export const aliceWhitelist: PolicySpec = {
  id: "wl-alice",
  name: "alice-only",
  type: "whitelist",
  config: { requesters: ["alice"] },
};
