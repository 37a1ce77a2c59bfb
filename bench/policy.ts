/**
 * Policy engine throughput: evaluations per second against a compiled set of ten policies
 * (whitelists, a DST-observing time-based window, duration and purpose limits), with `now`
 * advancing between calls so the time-zone lookup is not served from its per-second memo only.
 * Run: `bun bench/policy.ts`. Reports numbers; never asserts on them.
 */
import {
  compilePolicies,
  evaluateCompiled,
  parsePolicyInput,
  type AccessContext,
  type PolicyInputRaw,
  type PolicyRecord,
} from "../src/policy/index.ts";

const specs: PolicyInputRaw[] = [
  { name: "admins", type: "whitelist", priority: 100, config: { requesters: ["root", "ops-bot"] } },
  { name: "engineering", type: "whitelist", priority: 50, config: { departments: ["eng", "sre"] } },
  {
    name: "analysts",
    type: "whitelist",
    priority: 40,
    config: { requesters: Array.from({ length: 200 }, (_, i) => `analyst-${i}`) },
  },
  {
    name: "gmail-support",
    type: "whitelist",
    priority: 30,
    scope: { integrations: ["gmail"] },
    config: { departments: ["support"] },
  },
  {
    name: "business-hours",
    type: "time-based",
    priority: 20,
    config: {
      timezone: "America/New_York",
      days: ["mon", "tue", "wed", "thu", "fri"],
      hours: { from: "07:00", to: "22:00" },
      maxDataAgeSeconds: 90 * 86_400,
    },
  },
  {
    name: "night-shift",
    type: "time-based",
    priority: 20,
    scope: { requesters: ["night-bot"] },
    config: { timezone: "Europe/Berlin", hours: { from: "22:00", to: "06:00" } },
  },
  { name: "one-week", type: "duration-limit", priority: 10, config: { maxSeconds: 7 * 86_400 } },
  {
    name: "token-day",
    type: "duration-limit",
    priority: 10,
    scope: { resourceTypes: ["token"] },
    config: { maxSeconds: 86_400 },
  },
  { name: "why", type: "purpose", priority: 5, config: { minLength: 4 } },
  { name: "retired", type: "purpose", priority: 1, enabled: false, config: { allowed: ["legacy"] } },
];

export function benchPolicies(): PolicyRecord[] {
  return specs.map((s, i) => ({ ...parsePolicyInput(s), id: `pol-${i}`, version: 1 }));
}

/** Evaluations per second and microseconds per evaluation, after a warm-up. */
export function runPolicyBench(options: { iterations?: number } = {}): { opsPerSec: number; usPerOp: number } {
  const iterations = options.iterations ?? 200_000;
  const compiled = compilePolicies(benchPolicies());
  // Wednesday 2026-03-11 14:00 EDT; each call moves on by 1.1 s, cycling within three hours.
  const start = Date.UTC(2026, 2, 11, 18, 0);
  const ctx: AccessContext = {
    requester: { requesterId: "alice", department: "eng" },
    resource: { type: "timeslice" },
    timeRange: { start: start - 3_600_000, end: start },
    purpose: "incident review",
  };
  let granted = 0;
  const run = (n: number) => {
    for (let i = 0; i < n; i++) {
      if (evaluateCompiled(compiled, ctx, start + (i % 10_000) * 1100).allowed) granted++;
    }
  };
  run(20_000);
  granted = 0;
  const t0 = performance.now();
  run(iterations);
  const elapsedMs = performance.now() - t0;
  // The workload is meant to be all grants (every policy evaluated); guard the benchmark itself.
  if (granted !== iterations) throw new Error(`benchmark workload changed: ${iterations - granted} denials`);
  return { opsPerSec: Math.round((iterations / elapsedMs) * 1000), usPerOp: (elapsedMs * 1000) / iterations };
}

if (import.meta.main) {
  const { opsPerSec, usPerOp } = runPolicyBench();
  console.log(
    `policy engine (10 policies, compiled): ${opsPerSec.toLocaleString("en-US")} evaluations/s, ${usPerOp.toFixed(2)} µs/evaluation`,
  );
}
