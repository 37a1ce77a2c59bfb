import { describe, expect, test } from "bun:test";
import {
  compilePolicies,
  evaluate,
  evaluateCompiled,
  type AccessContext,
  type Decision,
  type DenialCode,
  type PolicyRecord,
} from "../../src/policy/index.ts";
import { HOUR, NOW, aliceWhitelist, ctx, policy, type PolicySpec } from "./helpers.ts";

interface Case {
  name: string;
  policies: PolicySpec[];
  ctx?: Partial<AccessContext>;
  now?: number;
  allowed: boolean;
  code?: DenialCode;
  policyId?: string | null;
  reason?: string;
}

function run(c: Case): Decision {
  return evaluate(c.policies.map(policy), ctx(c.ctx), c.now ?? NOW);
}

function check(c: Case): void {
  const d = run(c);
  expect({ allowed: d.allowed, code: d.allowed ? undefined : d.code }).toEqual({ allowed: c.allowed, code: c.code });
  if (c.policyId !== undefined) expect(d.policyId).toBe(c.policyId);
  if (c.reason !== undefined) expect(d.reason).toContain(c.reason);
}

const token = (integration: string): AccessContext["resource"] => ({ type: "token", integration, userId: "u1" });
const duration = (id: string, maxSeconds: number, extra: Partial<PolicySpec> = {}): PolicySpec =>
  ({ id, name: id, type: "duration-limit", config: { maxSeconds }, ...extra }) as PolicySpec;
const purpose = (id: string, config: Record<string, unknown> = {}, extra: Partial<PolicySpec> = {}): PolicySpec =>
  ({ id, name: id, type: "purpose", config, ...extra }) as PolicySpec;
const timeBased = (id: string, config: Record<string, unknown>, extra: Partial<PolicySpec> = {}): PolicySpec =>
  ({ id, name: id, type: "time-based", config, ...extra }) as PolicySpec;

describe("whitelists and the default", () => {
  test.each<Case>([
    {
      name: "no policy at all",
      policies: [],
      allowed: false,
      code: "NO_POLICY",
      policyId: null,
      reason: "denied by default",
    },
    {
      name: "only restrictive policies",
      policies: [duration("d", 7200)],
      allowed: false,
      code: "NO_POLICY",
      policyId: null,
    },
    {
      name: "admitted by id",
      policies: [aliceWhitelist],
      allowed: true,
      policyId: "wl-alice",
      reason: 'requester "alice" is listed by policy "alice-only"',
    },
    {
      name: "admitted by department",
      policies: [{ id: "wl-eng", name: "eng", type: "whitelist", config: { departments: ["eng"] } }],
      allowed: true,
      policyId: "wl-eng",
      reason: 'through department "eng"',
    },
    {
      name: "whitelist miss by id",
      policies: [{ id: "wl-bob", name: "bob-only", type: "whitelist", config: { requesters: ["bob"] } }],
      ctx: { requester: { requesterId: "alice" } },
      allowed: false,
      code: "NOT_WHITELISTED",
      policyId: "wl-bob",
      reason: 'requester "alice" is not admitted by any whitelist that applies (highest priority: policy "bob-only")',
    },
    {
      name: "whitelist miss by department",
      policies: [{ id: "wl-fin", name: "finance", type: "whitelist", config: { departments: ["finance"] } }],
      allowed: false,
      code: "NOT_WHITELISTED",
      policyId: "wl-fin",
      reason: 'requester "alice" (department "eng")',
    },
    {
      name: "department match is exact (case-sensitive)",
      policies: [{ id: "wl-eng", name: "eng", type: "whitelist", config: { departments: ["Eng"] } }],
      allowed: false,
      code: "NOT_WHITELISTED",
    },
    {
      name: "a null department matches no department",
      policies: [{ id: "wl-eng", name: "eng", type: "whitelist", config: { departments: ["eng"] } }],
      ctx: { requester: { requesterId: "alice", department: null } },
      allowed: false,
      code: "NOT_WHITELISTED",
    },
    {
      name: "a lower-priority whitelist that admits is enough; the grant names it",
      policies: [
        { id: "wl-bob", name: "bob-only", type: "whitelist", priority: 10, config: { requesters: ["bob"] } },
        { ...aliceWhitelist, priority: 1 },
      ],
      allowed: true,
      policyId: "wl-alice",
    },
    {
      name: "the grant names the highest-priority admitting whitelist",
      policies: [
        { ...aliceWhitelist, priority: 1 },
        { id: "wl-eng", name: "eng", type: "whitelist", priority: 5, config: { departments: ["eng"] } },
      ],
      allowed: true,
      policyId: "wl-eng",
    },
    {
      name: "the miss names the highest-priority whitelist in scope",
      policies: [
        { id: "wl-low", name: "low", type: "whitelist", priority: 1, config: { requesters: ["bob"] } },
        { id: "wl-high", name: "high", type: "whitelist", priority: 9, config: { requesters: ["carol"] } },
        {
          id: "wl-out",
          name: "out",
          type: "whitelist",
          priority: 99,
          config: { requesters: ["dave"] },
          scope: { resourceTypes: ["token"] },
        },
      ],
      allowed: false,
      code: "NOT_WHITELISTED",
      policyId: "wl-high",
    },
    {
      name: "not admitted beats a restrictive denial (admission first)",
      policies: [
        { id: "wl-bob", name: "bob-only", type: "whitelist", priority: 0, config: { requesters: ["bob"] } },
        duration("d", 60, { priority: 100 }),
      ],
      allowed: false,
      code: "NOT_WHITELISTED",
      policyId: "wl-bob",
    },
  ])("$name", check);
});

describe("duration-limit", () => {
  test.each<Case>([
    {
      name: "range longer than the limit",
      policies: [aliceWhitelist, duration("d", 1800)],
      allowed: false,
      code: "RANGE_TOO_LONG",
      policyId: "d",
      reason: 'requested range of 1 h exceeds the 30 min limit (policy "d")',
    },
    {
      name: "range exactly the limit",
      policies: [aliceWhitelist, duration("d", 3600)],
      allowed: true,
      policyId: "wl-alice",
    },
    {
      name: "one ms over the limit",
      policies: [aliceWhitelist, duration("d", 3600)],
      ctx: { timeRange: { start: NOW - HOUR - 1, end: NOW } },
      allowed: false,
      code: "RANGE_TOO_LONG",
    },
    {
      name: "empty range",
      policies: [aliceWhitelist, duration("d", 1)],
      ctx: { timeRange: { start: NOW, end: NOW } },
      allowed: true,
    },
  ])("$name", check);
});

describe("purpose", () => {
  test.each<Case>([
    {
      name: "missing purpose",
      policies: [aliceWhitelist, purpose("p")],
      allowed: false,
      code: "PURPOSE_REQUIRED",
      policyId: "p",
      reason: 'a purpose is required (policy "p")',
    },
    {
      name: "blank purpose",
      policies: [aliceWhitelist, purpose("p")],
      ctx: { purpose: "   " },
      allowed: false,
      code: "PURPOSE_REQUIRED",
    },
    {
      name: "null purpose",
      policies: [aliceWhitelist, purpose("p")],
      ctx: { purpose: null },
      allowed: false,
      code: "PURPOSE_REQUIRED",
    },
    {
      name: "any purpose when no list",
      policies: [aliceWhitelist, purpose("p")],
      ctx: { purpose: "debugging" },
      allowed: true,
    },
    {
      name: "purpose shorter than minLength",
      policies: [aliceWhitelist, purpose("p", { minLength: 10 })],
      ctx: { purpose: " short  " },
      allowed: false,
      code: "PURPOSE_TOO_SHORT",
      reason: "at least 10 characters, got 5",
    },
    {
      name: "purpose not in the allowed list",
      policies: [aliceWhitelist, purpose("p", { allowed: ["audit", "support"] })],
      ctx: { purpose: "curiosity" },
      allowed: false,
      code: "PURPOSE_NOT_ALLOWED",
      reason: 'purpose "curiosity" is not one of "audit", "support" (policy "p")',
    },
    {
      name: "allowed purpose (trimmed)",
      policies: [aliceWhitelist, purpose("p", { allowed: ["audit", "support"] })],
      ctx: { purpose: " support " },
      allowed: true,
    },
    {
      name: "allowed list is case-sensitive",
      policies: [aliceWhitelist, purpose("p", { allowed: ["audit"] })],
      ctx: { purpose: "Audit" },
      allowed: false,
      code: "PURPOSE_NOT_ALLOWED",
    },
  ])("$name", check);
});

describe("enabled, priority and scope", () => {
  test.each<Case>([
    {
      name: "a disabled deny policy is ignored",
      policies: [aliceWhitelist, duration("d", 1, { enabled: false })],
      allowed: true,
    },
    {
      name: "a disabled whitelist admits nobody",
      policies: [{ ...aliceWhitelist, enabled: false }],
      allowed: false,
      code: "NO_POLICY",
      policyId: null,
    },
    {
      name: "two denials: the higher priority one is reported",
      policies: [aliceWhitelist, duration("d", 60, { priority: 5 }), purpose("p", {}, { priority: 10 })],
      allowed: false,
      code: "PURPOSE_REQUIRED",
      policyId: "p",
    },
    {
      name: "two denials, priorities swapped",
      policies: [aliceWhitelist, duration("d", 60, { priority: 10 }), purpose("p", {}, { priority: 5 })],
      allowed: false,
      code: "RANGE_TOO_LONG",
      policyId: "d",
    },
    {
      name: "equal priority: ties broken by name",
      policies: [aliceWhitelist, duration("z-limit", 60, { id: "d" }), purpose("a-purpose", {}, { id: "p" })],
      allowed: false,
      code: "PURPOSE_REQUIRED",
      policyId: "p",
    },
    {
      name: "equal priority and name: ties broken by id",
      policies: [aliceWhitelist, duration("same", 60, { id: "id-2" }), purpose("same", {}, { id: "id-1" })],
      allowed: false,
      policyId: "id-1",
      code: "PURPOSE_REQUIRED",
    },
    {
      name: "resourceTypes scope excludes",
      policies: [aliceWhitelist, duration("d", 60, { scope: { resourceTypes: ["token"] } })],
      allowed: true,
    },
    {
      name: "resourceTypes scope includes",
      policies: [aliceWhitelist, duration("d", 60, { scope: { resourceTypes: ["timeslice"] } })],
      allowed: false,
      code: "RANGE_TOO_LONG",
    },
    {
      name: "integration-scoped policy does not apply to timeslice requests",
      policies: [aliceWhitelist, duration("d", 60, { scope: { integrations: ["gmail"] } })],
      allowed: true,
    },
    {
      name: "integration-scoped policy does not apply to other integrations",
      policies: [aliceWhitelist, duration("d", 60, { scope: { integrations: ["gmail"] } })],
      ctx: { resource: token("github") },
      allowed: true,
    },
    {
      name: "integration-scoped policy applies to its integration",
      policies: [aliceWhitelist, duration("d", 60, { scope: { integrations: ["gmail"] } })],
      ctx: { resource: token("gmail") },
      allowed: false,
      code: "RANGE_TOO_LONG",
    },
    {
      name: "integration-scoped whitelist does not admit timeslice requests",
      policies: [{ ...aliceWhitelist, scope: { integrations: ["gmail"] } }],
      allowed: false,
      code: "NO_POLICY",
    },
    {
      name: "requesters scope excludes",
      policies: [aliceWhitelist, duration("d", 60, { scope: { requesters: ["bob"] } })],
      allowed: true,
    },
    {
      name: "requesters scope includes",
      policies: [aliceWhitelist, duration("d", 60, { scope: { requesters: ["bob", "alice"] } })],
      allowed: false,
      code: "RANGE_TOO_LONG",
    },
    {
      name: "every scope dimension must match",
      policies: [
        aliceWhitelist,
        duration("d", 60, { scope: { resourceTypes: ["token"], integrations: ["gmail"], requesters: ["bob"] } }),
      ],
      ctx: { resource: token("gmail") },
      allowed: true,
    },
  ])("$name", check);
});

describe("time-based: request time", () => {
  const night = timeBased("night", {
    timezone: "America/New_York",
    hours: { from: "22:00", to: "06:00" },
    allowFuture: true,
  });
  // Each instant is given in UTC; the comment is the New York wall clock.
  test.each<[string, string, boolean]>([
    ["2026-03-08T04:30:00Z", "Sat Mar 7 23:30 EST, the night DST starts", true],
    ["2026-03-09T03:30:00Z", "Sun Mar 8 23:30 EDT, the night after", true],
    ["2026-03-09T09:59:00Z", "Mon Mar 9 05:59 EDT (would be 04:59 if EST were assumed)", true],
    ["2026-03-09T10:00:00Z", "Mon Mar 9 06:00 EDT: `to` is exclusive (05:00 under EST)", false],
    ["2026-03-09T01:59:00Z", "Sun Mar 8 21:59 EDT (20:59 under EST)", false],
    ["2026-03-09T02:00:00Z", "Sun Mar 8 22:00 EDT: `from` is inclusive (21:00 under EST)", true],
    ["2026-03-08T06:30:00Z", "Sun Mar 8 01:30 EST, before the jump", true],
    ["2026-03-08T07:30:00Z", "Sun Mar 8 03:30 EDT, after the jump", true],
    ["2026-11-01T03:30:00Z", "Sat Oct 31 23:30 EDT, the night DST ends", true],
    ["2026-11-02T04:30:00Z", "Sun Nov 1 23:30 EST, the night after", true],
    ["2026-11-01T05:30:00Z", "Sun Nov 1 01:30 EDT (first)", true],
    ["2026-11-01T06:30:00Z", "Sun Nov 1 01:30 EST (repeated hour)", true],
    ["2026-11-01T10:30:00Z", "Sun Nov 1 05:30 EST (06:30 under EDT)", true],
    ["2026-11-01T11:00:00Z", "Sun Nov 1 06:00 EST", false],
    ["2026-11-02T02:59:00Z", "Sun Nov 1 21:59 EST (22:59 under EDT)", false],
    ["2026-11-02T03:00:00Z", "Sun Nov 1 22:00 EST", true],
    ["2026-03-10T15:00:00Z", "Tue Mar 10 11:00 EDT", false],
  ])("%s (%s) → %p", (iso, _wall, allowed) => {
    const now = Date.parse(iso);
    const d = evaluate(
      [policy(aliceWhitelist), policy(night)],
      ctx({ timeRange: { start: now - HOUR, end: now } }),
      now,
    );
    expect(d.allowed).toBe(allowed);
    if (!d.allowed) {
      expect(d.code).toBe("OUTSIDE_TIME_WINDOW");
      expect(d.policyId).toBe("night");
      expect(d.reason).toMatch(/^request at \d\d:\d\d America\/New_York is outside 22:00–06:00 \(policy "night"\)$/);
    }
  });

  test("reason names the local time", () => {
    const now = Date.parse("2026-03-10T07:00:00Z"); // 03:00 EDT
    const bh = timeBased("business-hours", { timezone: "America/New_York", hours: { from: "09:00", to: "17:00" } });
    const d = evaluate([policy(aliceWhitelist), policy(bh)], ctx({ timeRange: { start: now - HOUR, end: now } }), now);
    expect(d.reason).toBe('request at 03:00 America/New_York is outside 09:00–17:00 (policy "business-hours")');
  });

  // Days are the local weekday of the request instant.
  test.each<Case>([
    {
      name: "Tokyo Monday 08:00 is Sunday in UTC: mon allowed",
      policies: [aliceWhitelist, timeBased("t", { timezone: "Asia/Tokyo", days: ["mon"], allowFuture: true })],
      now: Date.parse("2026-03-08T23:00:00Z"),
      allowed: true,
    },
    {
      name: "Tokyo Monday 08:00 is Sunday in UTC: sun refused",
      policies: [aliceWhitelist, timeBased("t", { timezone: "Asia/Tokyo", days: ["sun"], allowFuture: true })],
      now: Date.parse("2026-03-08T23:00:00Z"),
      allowed: false,
      code: "OUTSIDE_TIME_WINDOW",
      reason: 'request on Monday (2026-03-09 08:00 Asia/Tokyo) is not on an allowed day (sun) (policy "t")',
    },
    {
      name: "Los Angeles Friday 20:00 is Saturday in UTC: weekdays allowed",
      policies: [
        aliceWhitelist,
        timeBased("t", {
          timezone: "America/Los_Angeles",
          days: ["mon", "tue", "wed", "thu", "fri"],
          hours: { from: "08:00", to: "21:00" },
          allowFuture: true,
        }),
      ],
      now: Date.parse("2026-03-14T03:00:00Z"),
      allowed: true,
    },
    {
      name: "Los Angeles Saturday 08:00 refused on weekdays",
      policies: [
        aliceWhitelist,
        timeBased("t", {
          timezone: "America/Los_Angeles",
          days: ["mon", "tue", "wed", "thu", "fri"],
          allowFuture: true,
        }),
      ],
      now: Date.parse("2026-03-14T16:00:00Z"),
      allowed: false,
      code: "OUTSIDE_TIME_WINDOW",
    },
    {
      name: "overnight window: the part after midnight counts on the next day",
      policies: [
        aliceWhitelist,
        timeBased("t", { timezone: "UTC", days: ["fri"], hours: { from: "22:00", to: "06:00" }, allowFuture: true }),
      ],
      now: Date.parse("2026-03-14T02:00:00Z"), // Saturday 02:00
      allowed: false,
      code: "OUTSIDE_TIME_WINDOW",
      reason: "not on an allowed day (fri)",
    },
  ])("$name", check);

  const window = timeBased("w", {
    timezone: "UTC",
    notBefore: "2026-03-01T00:00:00Z",
    notAfter: "2026-04-01T00:00:00Z",
    allowFuture: true,
  });
  test.each<Case>([
    {
      name: "before notBefore",
      policies: [aliceWhitelist, window],
      now: Date.UTC(2026, 1, 28, 23, 59, 59, 999),
      allowed: false,
      code: "OUTSIDE_TIME_WINDOW",
      reason: "is before 2026-03-01T00:00:00.000Z",
    },
    { name: "at notBefore (inclusive)", policies: [aliceWhitelist, window], now: Date.UTC(2026, 2, 1), allowed: true },
    { name: "at notAfter (inclusive)", policies: [aliceWhitelist, window], now: Date.UTC(2026, 3, 1), allowed: true },
    {
      name: "after notAfter",
      policies: [aliceWhitelist, window],
      now: Date.UTC(2026, 3, 1) + 1,
      allowed: false,
      code: "OUTSIDE_TIME_WINDOW",
      reason: "is after 2026-04-01T00:00:00.000Z",
    },
  ])("$name", check);
});

describe("time-based: data range", () => {
  const fresh = timeBased("fresh", { timezone: "UTC", maxDataAgeSeconds: 86_400 });
  const future = timeBased("future", { timezone: "UTC", allowFuture: true });
  test.each<Case>([
    {
      name: "data older than maxDataAgeSeconds",
      policies: [aliceWhitelist, fresh],
      ctx: { timeRange: { start: NOW - 25 * HOUR, end: NOW } },
      allowed: false,
      code: "DATA_TOO_OLD",
      reason: 'older than the 1 d policy "fresh" allows',
    },
    {
      name: "data exactly maxDataAgeSeconds old",
      policies: [aliceWhitelist, fresh],
      ctx: { timeRange: { start: NOW - 24 * HOUR, end: NOW } },
      allowed: true,
    },
    {
      name: "future data refused by default",
      policies: [aliceWhitelist, fresh],
      ctx: { timeRange: { start: NOW, end: NOW + 1 } },
      allowed: false,
      code: "FUTURE_DATA",
    },
    {
      name: "data up to now is not future",
      policies: [aliceWhitelist, fresh],
      ctx: { timeRange: { start: NOW - HOUR, end: NOW } },
      allowed: true,
    },
    {
      name: "allowFuture admits future data",
      policies: [aliceWhitelist, future],
      ctx: { timeRange: { start: NOW, end: NOW + 24 * HOUR } },
      allowed: true,
    },
    {
      name: "checks run in order: request time before data age",
      policies: [
        aliceWhitelist,
        timeBased("t", { timezone: "UTC", hours: { from: "00:00", to: "01:00" }, maxDataAgeSeconds: 1 }),
      ],
      ctx: { timeRange: { start: 0, end: NOW } },
      allowed: false,
      code: "OUTSIDE_TIME_WINDOW",
    },
  ])("$name", check);
});

describe("robustness", () => {
  test.each<[string, Partial<AccessContext>, number]>([
    ["end before start", { timeRange: { start: NOW, end: NOW - 1 } }, NOW],
    ["NaN start", { timeRange: { start: Number.NaN, end: NOW } }, NOW],
    ["infinite end", { timeRange: { start: NOW, end: Number.POSITIVE_INFINITY } }, NOW],
    ["NaN now", {}, Number.NaN],
    ["empty requester", { requester: { requesterId: "" } }, NOW],
  ])("%s → INVALID_REQUEST, never a grant or a throw", (_label, over, now) => {
    const d = evaluate([policy(aliceWhitelist)], ctx(over), now);
    expect(d).toMatchObject({ allowed: false, code: "INVALID_REQUEST", policyId: null });
  });

  test("a broken whitelist admits no one and denies (POLICY_MISCONFIGURED), even where another whitelist admits", () => {
    const broken = { ...policy(aliceWhitelist), config: { requesters: 42 } } as unknown as PolicyRecord;
    const d = evaluate([broken], ctx(), NOW);
    expect(d).toMatchObject({ allowed: false, code: "POLICY_MISCONFIGURED", policyId: "wl-alice" });
    expect(d.reason).toContain("invalid whitelist config");
    const other = policy({
      id: "wl-eng",
      name: "eng",
      type: "whitelist",
      priority: -1,
      config: { departments: ["eng"] },
    });
    expect(evaluate([broken, other], ctx(), NOW)).toMatchObject({
      allowed: false,
      code: "POLICY_MISCONFIGURED",
      policyId: "wl-alice",
    });
  });

  test("a whitelist whose requesters was stored as a string (a hand edit) admits nobody, not every one-character id", () => {
    const edited = { ...policy(aliceWhitelist), config: { requesters: "alice" } } as unknown as PolicyRecord;
    for (const id of ["a", "l", "i", "c", "e", "alice"]) {
      expect(evaluate([edited], ctx({ requester: { requesterId: id, department: null } }), NOW)).toMatchObject({
        allowed: false,
        code: "POLICY_MISCONFIGURED",
      });
    }
    // Every type: a config its schema refuses compiles to a deny.
    for (const bad of [
      { ...policy(duration("d", 7200)), config: { maxSeconds: "7200" } },
      { ...policy(timeBased("t", { timezone: "UTC" })), config: { timezone: "UTC", allowFuture: "yes" } },
      { ...policy({ id: "p", name: "p", type: "purpose", config: {} }), config: { allowed: "tour" } },
    ] as unknown as PolicyRecord[]) {
      expect(evaluate([policy(aliceWhitelist), bad], ctx(), NOW)).toMatchObject({
        allowed: false,
        code: "POLICY_MISCONFIGURED",
        policyId: bad.id,
      });
    }
  });

  test("a malformed scope fails closed instead of throwing", () => {
    const bad = { ...policy(duration("d", 7200)), scope: { requesters: "alice" } } as unknown as PolicyRecord;
    expect(evaluate([policy(aliceWhitelist), bad], ctx({ resource: token("gmail") }), NOW)).toMatchObject({
      allowed: false,
      code: "POLICY_MISCONFIGURED",
      policyId: "d",
    });
  });

  test("an unknown zone in a stored record fails closed instead of throwing", () => {
    const bad = { ...policy(timeBased("tz", { timezone: "UTC" })), config: { timezone: "Mars/Base" } } as PolicyRecord;
    const d = evaluate([policy(aliceWhitelist), bad], ctx(), NOW);
    expect(d).toMatchObject({ allowed: false, code: "POLICY_MISCONFIGURED", policyId: "tz" });
    expect(d.reason).toContain('policy "tz" has an invalid time-based config');
  });
});

describe("evaluated list and modes", () => {
  const records = [
    policy(aliceWhitelist),
    policy({ id: "wl-bob", name: "bob-only", type: "whitelist", priority: 3, config: { requesters: ["bob"] } }),
    policy(duration("d", 7200, { priority: 5 })),
    policy(duration("off", 1, { enabled: false })),
    policy(duration("tok", 1, { scope: { resourceTypes: ["token"] } })),
  ];

  test("enforce lists the policies that applied, in evaluation order, with versions and outcomes", () => {
    const d = evaluate(records, ctx(), NOW);
    expect(d.allowed).toBe(true);
    expect(d.evaluated.map((e) => [e.id, e.version, e.outcome])).toEqual([
      ["d", 1, "passed"],
      ["wl-bob", 1, "not-admitted"],
      ["wl-alice", 1, "admitted"],
    ]);
    expect(d).toMatchObject({ policyId: "wl-alice", policyVersion: 1 });
  });

  test("simulate also lists skipped policies and why, and decides the same", () => {
    const enforce = evaluate(records, ctx(), NOW);
    const simulate = evaluate(records, ctx({ mode: "simulate" }), NOW);
    expect({ ...simulate, evaluated: [] }).toEqual({ ...enforce, evaluated: [] });
    const skipped = simulate.evaluated.filter((e) => e.outcome === "skipped");
    expect(skipped.map((e) => [e.id, e.reason])).toEqual([
      ["off", 'policy "off" skipped: disabled'],
      ["tok", 'policy "tok" skipped: scoped to resource types "token", not "timeslice"'],
    ]);
  });

  test("a compiled set gives the same answers as one-shot evaluation and can be reused", () => {
    const compiled = compilePolicies(records);
    for (const c of [
      ctx(),
      ctx({ purpose: "x" }),
      ctx({ requester: { requesterId: "bob" } }),
      ctx({ timeRange: { start: 0, end: NOW } }),
    ]) {
      expect(evaluateCompiled(compiled, c, NOW)).toEqual(evaluate(records, c, NOW));
    }
  });

  test("a denial carries the deciding policy's version", () => {
    const d = evaluate([policy(aliceWhitelist), { ...policy(duration("d", 60)), version: 7 }], ctx(), NOW);
    expect(d).toMatchObject({ allowed: false, policyId: "d", policyVersion: 7 });
    expect(d.evaluated.find((e) => e.id === "d")).toMatchObject({
      outcome: "denied",
      code: "RANGE_TOO_LONG",
      version: 7,
    });
  });
});

describe("future data is denied by default", () => {
  const future = ctx({ timeRange: { start: NOW - HOUR, end: NOW + 1 } });
  test("with only a whitelist: FUTURE_DATA, naming no policy", () => {
    const d = evaluate([policy(aliceWhitelist)], future, NOW);
    expect(d).toMatchObject({ allowed: false, code: "FUTURE_DATA", policyId: null });
    expect(evaluate([policy(aliceWhitelist)], ctx({ timeRange: { start: NOW - HOUR, end: NOW } }), NOW).allowed).toBe(
      true,
    );
  });
  test("an enabled time-based policy in scope with allowFuture: true lifts it; disabled or out of scope does not", () => {
    expect(
      evaluate([policy(aliceWhitelist), policy(timeBased("tf", { timezone: "UTC", allowFuture: true }))], future, NOW)
        .allowed,
    ).toBe(true);
    expect(
      evaluate(
        [policy(aliceWhitelist), policy(timeBased("tf", { timezone: "UTC", allowFuture: true }, { enabled: false }))],
        future,
        NOW,
      ),
    ).toMatchObject({ code: "FUTURE_DATA" });
    expect(
      evaluate(
        [
          policy(aliceWhitelist),
          policy(timeBased("tf", { timezone: "UTC", allowFuture: true }, { scope: { requesters: ["bob"] } })),
        ],
        future,
        NOW,
      ),
    ).toMatchObject({ code: "FUTURE_DATA" });
    // Another time-based policy without allowFuture still denies on its own, and is named.
    expect(
      evaluate(
        [
          policy(aliceWhitelist),
          policy(timeBased("tf", { timezone: "UTC", allowFuture: true })),
          policy(timeBased("strict", { timezone: "UTC" })),
        ],
        future,
        NOW,
      ),
    ).toMatchObject({ code: "FUTURE_DATA", policyId: "strict" });
  });
  test("admission first: a requester no whitelist admits is not told about future data", () => {
    expect(
      evaluate(
        [policy(aliceWhitelist)],
        ctx({ requester: { requesterId: "mallory", department: null }, timeRange: { start: NOW, end: NOW + HOUR } }),
        NOW,
      ),
    ).toMatchObject({ code: "NOT_WHITELISTED" });
  });
});
