import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  PolicyInputSchema,
  WEEKDAYS,
  compilePolicies,
  evaluate,
  evaluateCompiled,
  type AccessContext,
  type Decision,
  type PolicyRecord,
} from "../../src/policy/index.ts";

// Small pools so that generated policies and requests actually meet (same ids, ties, overlaps).
const REQUESTERS = ["alice", "bob", "carol"] as const;
const DEPARTMENTS = ["eng", "ops"] as const;
const INTEGRATIONS = ["gmail", "github", "slack"] as const;
const ZONES = ["UTC", "America/New_York", "Asia/Tokyo", "Asia/Kathmandu", "Australia/Lord_Howe"] as const;
const PURPOSES = ["audit", "support", "billing review"] as const;
const T0 = Date.UTC(2024, 0, 1);
const T1 = Date.UTC(2030, 0, 1);

const someOf = <T>(values: readonly T[]) => fc.subarray([...values], { minLength: 1 });
const hhmm = fc
  .tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
  .map(([h, m]) => `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`);

// Mostly unscoped, so that most generated policies apply and decisions are not all NO_POLICY.
const scope = fc.oneof(
  { arbitrary: fc.constant({}), weight: 3 },
  {
    arbitrary: fc.record(
      {
        resourceTypes: someOf(["token", "timeslice"] as const),
        integrations: someOf(INTEGRATIONS),
        requesters: someOf(REQUESTERS),
      },
      { requiredKeys: [] },
    ),
    weight: 2,
  },
);

const config = fc.oneof(
  {
    arbitrary: fc.record({
      type: fc.constant("whitelist"),
      config: fc.record(
        { requesters: fc.subarray([...REQUESTERS]), departments: fc.subarray([...DEPARTMENTS]) },
        { requiredKeys: [] },
      ),
    }),
    weight: 3,
  },
  fc.record({
    type: fc.constant("time-based"),
    config: fc.record(
      {
        timezone: fc.constantFrom(...ZONES),
        days: someOf(WEEKDAYS),
        hours: fc.record({ from: hhmm, to: hhmm }),
        notBefore: fc.integer({ min: T0, max: T1 }),
        notAfter: fc.integer({ min: T0, max: T1 }),
        maxDataAgeSeconds: fc.integer({ min: 1, max: 400 * 86_400 }),
        allowFuture: fc.boolean(),
      },
      { requiredKeys: ["timezone"] },
    ),
  }),
  fc.record({
    type: fc.constant("duration-limit"),
    config: fc.record({ maxSeconds: fc.integer({ min: 1, max: 30 * 86_400 }) }),
  }),
  fc.record({
    type: fc.constant("purpose"),
    config: fc.record({ allowed: someOf(PURPOSES), minLength: fc.integer({ min: 1, max: 8 }) }, { requiredKeys: [] }),
  }),
);

/** Valid policies only: generated loosely, then kept if (and as) the real schema accepts them. */
const policyRecord = (enabled: fc.Arbitrary<boolean>) =>
  fc
    .record({
      name: fc.constantFrom("a", "b", "c", "d"),
      priority: fc.integer({ min: -2, max: 2 }),
      enabled,
      scope,
      version: fc.integer({ min: 1, max: 50 }),
      typed: config,
    })
    .map(({ typed, version, ...rest }) => ({ input: PolicyInputSchema.safeParse({ ...rest, ...typed }), version }))
    .filter(({ input }) => input.success)
    .map(({ input, version }) => ({ ...input.data!, version }));

const withIds = (policies: Omit<PolicyRecord, "id">[], prefix: string): PolicyRecord[] =>
  policies.map((p, i) => ({ ...p, id: `${prefix}${i}` }) as PolicyRecord);

const policySet = fc.array(policyRecord(fc.boolean()), { maxLength: 8 }).map((ps) => withIds(ps, "p"));

const context: fc.Arbitrary<{ ctx: AccessContext; now: number }> = fc
  .record({
    now: fc.integer({ min: T0, max: T1 }),
    requesterId: fc.constantFrom(...REQUESTERS, "mallory"),
    department: fc.option(fc.constantFrom(...DEPARTMENTS, "sales"), { nil: null }),
    resource: fc.oneof(
      fc.constant({ type: "timeslice" as const }),
      fc.record({
        type: fc.constant("token" as const),
        integration: fc.constantFrom(...INTEGRATIONS, "outlook"),
        userId: fc.constant("u1"),
      }),
    ),
    startOffset: fc.integer({ min: -500 * 86_400_000, max: 86_400_000 }),
    length: fc.integer({ min: 0, max: 60 * 86_400_000 }),
    purpose: fc.option(fc.constantFrom(...PURPOSES, "", "  audit  ", "x"), { nil: undefined }),
  })
  .map(({ now, requesterId, department, resource, startOffset, length, purpose }) => ({
    now,
    ctx: {
      requester: { requesterId, department },
      resource,
      timeRange: { start: Math.max(0, now + startOffset), end: Math.max(0, now + startOffset) + length },
      ...(purpose === undefined ? {} : { purpose }),
    },
  }));

const KNOWN_CODES = new Set([
  "NO_POLICY",
  "NOT_WHITELISTED",
  "OUTSIDE_TIME_WINDOW",
  "DATA_TOO_OLD",
  "FUTURE_DATA",
  "RANGE_TOO_LONG",
  "PURPOSE_REQUIRED",
  "PURPOSE_TOO_SHORT",
  "PURPOSE_NOT_ALLOWED",
]);

describe("engine properties", () => {
  test("never throws, and every decision is well-formed and consistent with its evaluated list", () => {
    fc.assert(
      fc.property(policySet, context, (policies, { ctx, now }) => {
        const d = evaluate(policies, ctx, now);
        const byId = new Map(policies.map((p) => [p.id, p]));
        for (const e of d.evaluated) expect(byId.get(e.id)?.enabled).toBe(true);
        expect(d.reason.length).toBeGreaterThan(0);
        if (d.allowed) {
          expect(byId.get(d.policyId)?.type).toBe("whitelist");
          expect(d.evaluated.find((e) => e.id === d.policyId)?.outcome).toBe("admitted");
          expect(d.evaluated.some((e) => e.outcome === "denied")).toBe(false);
        } else {
          expect(KNOWN_CODES.has(d.code)).toBe(true);
          // The default future-data rule and "no whitelist" are the denials no policy makes.
          if (d.code === "NO_POLICY") expect(d.policyId).toBeNull();
          else if (d.policyId === null) expect(d.code).toBe("FUTURE_DATA");
          else expect(byId.get(d.policyId!)?.version).toBe(d.policyVersion!);
        }
      }),
      { numRuns: 500 },
    );
  });

  test("adding a disabled policy never changes the decision", () => {
    fc.assert(
      fc.property(
        policySet,
        fc.array(policyRecord(fc.constant(false)), { minLength: 1, maxLength: 3 }),
        context,
        (policies, disabled, { ctx, now }) => {
          const before = evaluate(policies, ctx, now);
          const after = evaluate([...withIds(disabled, "off"), ...policies], ctx, now);
          expect(after).toEqual(before);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("the order policies are loaded in does not matter", () => {
    fc.assert(
      fc.property(
        policySet.chain((ps) => fc.tuple(fc.constant(ps), fc.shuffledSubarray(ps, { minLength: ps.length }))),
        context,
        ([policies, shuffled], { ctx, now }) => {
          expect(evaluate(shuffled, ctx, now)).toEqual(evaluate(policies, ctx, now));
        },
      ),
      { numRuns: 300 },
    );
  });

  test("simulate mode decides exactly as enforce mode", () => {
    fc.assert(
      fc.property(policySet, context, (policies, { ctx, now }) => {
        const compiled = compilePolicies(policies);
        const strip = (d: Decision) => ({ ...d, evaluated: d.evaluated.filter((e) => e.outcome !== "skipped") });
        expect(strip(evaluateCompiled(compiled, { ...ctx, mode: "simulate" }, now))).toEqual(
          evaluateCompiled(compiled, ctx, now),
        );
      }),
      { numRuns: 300 },
    );
  });

  test("removing every whitelist always denies", () => {
    fc.assert(
      fc.property(policySet, context, (policies, { ctx, now }) => {
        const d = evaluate(
          policies.filter((p) => p.type !== "whitelist"),
          ctx,
          now,
        );
        expect(d).toMatchObject({ allowed: false, code: "NO_POLICY", policyId: null });
      }),
      { numRuns: 200 },
    );
  });
});
