import { describe, expect, test } from "bun:test";
import { ValidationError } from "../../src/errors.ts";
import { applyPolicyPatch, parsePolicyInput, parsePolicyRecord, type PolicyFields } from "../../src/policy/index.ts";
import { AccessRequestBodySchema, parseAccessRequestBody } from "../../src/access/request-body.ts";
import { MAX_INSTANT_MS } from "../../src/lib/schemas.ts";

/** The thrown ValidationError, or a failure if parsing succeeded. */
function rejection(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error("expected a ValidationError, but the input was accepted");
}

const tb = (config: Record<string, unknown>) => ({
  name: "t",
  type: "time-based",
  config: { timezone: "UTC", ...config },
});

describe("policy input: bad configs are refused with a clear message", () => {
  test.each([
    ["unknown time zone", tb({ timezone: "Mars/Base" }), 'config.timezone: unknown IANA time zone "Mars/Base"'],
    ["offset instead of zone", tb({ timezone: "+05:00" }), 'unknown IANA time zone "+05:00"'],
    [
      "hour 25",
      tb({ hours: { from: "25:00", to: "06:00" } }),
      'config.hours.from: hours.from must be "HH:MM" with HH 00–23 and MM 00–59 (got "25:00")',
    ],
    ["minute 60", tb({ hours: { from: "09:00", to: "12:60" } }), '(got "12:60")'],
    ["single-digit hour", tb({ hours: { from: "9:00", to: "17:00" } }), '(got "9:00")'],
    ["from equals to", tb({ hours: { from: "09:00", to: "09:00" } }), "hours.from and hours.to must differ"],
    ["unknown field in hours", tb({ hours: { from: "09:00", to: "17:00", tz: "UTC" } }), 'Unrecognized key: "tz"'],
    [
      "notBefore after notAfter",
      tb({ notBefore: "2026-02-01T00:00:00Z", notAfter: "2026-01-01T00:00:00Z" }),
      "notBefore must not be after notAfter",
    ],
    ["notBefore without offset", tb({ notBefore: "2026-02-01T00:00:00" }), "with a Z or ±HH:MM offset"],
    ["negative maxDataAgeSeconds", tb({ maxDataAgeSeconds: -60 }), "maxDataAgeSeconds must be positive"],
    ["fractional maxDataAgeSeconds", tb({ maxDataAgeSeconds: 1.5 }), "maxDataAgeSeconds must be a whole number"],
    ["unknown weekday", tb({ days: ["mon", "funday"] }), 'days must be among "mon" … "sun"'],
    ["repeated weekday", tb({ days: ["mon", "mon"] }), "days must not repeat"],
    ["empty days", tb({ days: [] }), "days must not be empty"],
    ["allowFuture not boolean", tb({ allowFuture: "yes" }), "allowFuture must be true or false"],
    ["unknown field in time-based config", tb({ timeZone: "UTC" }), 'Unrecognized key: "timeZone"'],
    [
      "negative maxSeconds",
      { name: "d", type: "duration-limit", config: { maxSeconds: -1 } },
      "maxSeconds must be positive",
    ],
    [
      "zero maxSeconds",
      { name: "d", type: "duration-limit", config: { maxSeconds: 0 } },
      "maxSeconds must be positive",
    ],
    ["missing maxSeconds", { name: "d", type: "duration-limit", config: {} }, "maxSeconds is required"],
    [
      "unknown field in duration config",
      { name: "d", type: "duration-limit", config: { maxSeconds: 60, minSeconds: 1 } },
      'Unrecognized key: "minSeconds"',
    ],
    [
      "empty whitelist",
      { name: "w", type: "whitelist", config: {} },
      "a whitelist must name at least one requester or department",
    ],
    [
      "whitelist of empty lists",
      { name: "w", type: "whitelist", config: { requesters: [], departments: [] } },
      "at least one requester or department",
    ],
    [
      "bad requester id",
      { name: "w", type: "whitelist", config: { requesters: ["al ice"] } },
      "requester id must be 1–128 characters",
    ],
    [
      "unknown field in whitelist config",
      { name: "w", type: "whitelist", config: { requesters: ["a"], groups: ["x"] } },
      'Unrecognized key: "groups"',
    ],
    ["purpose minLength 0", { name: "p", type: "purpose", config: { minLength: 0 } }, "minLength must be at least 1"],
    [
      "allowed purpose shorter than minLength",
      { name: "p", type: "purpose", config: { allowed: ["ops"], minLength: 5 } },
      'allowed purpose "ops" is shorter than minLength 5',
    ],
    [
      "unknown type",
      { name: "x", type: "geo-fence", config: {} },
      'type must be one of "whitelist", "time-based", "duration-limit", "purpose"',
    ],
    [
      "config of another type",
      { name: "x", type: "whitelist", config: { maxSeconds: 60 } },
      'Unrecognized key: "maxSeconds"',
    ],
    ["unknown top-level field", { name: "x", type: "purpose", config: {}, owner: "me" }, 'Unrecognized key: "owner"'],
    [
      "unknown scope field",
      { name: "x", type: "purpose", config: {}, scope: { users: ["a"] } },
      'Unrecognized key: "users"',
    ],
    [
      "empty scope list",
      { name: "x", type: "purpose", config: {}, scope: { resourceTypes: [] } },
      "scope.resourceTypes must not be empty (omit it",
    ],
    [
      "unknown resource type",
      { name: "x", type: "purpose", config: {}, scope: { resourceTypes: ["file"] } },
      'resource type must be "token" or "timeslice"',
    ],
    ["empty name", { name: "  ", type: "purpose", config: {} }, "name must not be empty"],
    ["fractional priority", { name: "x", type: "purpose", config: {}, priority: 1.5 }, "priority must be an integer"],
  ] as const)("%s", (_label, input, message) => {
    const err = rejection(() => parsePolicyInput(input));
    expect(err.code).toBe("VALIDATION_FAILED");
    expect(err.message).toContain(message);
    expect(err.message.startsWith("invalid policy: ")).toBe(true);
    const issues = (err.details as { issues: { path: unknown[]; message: string }[] }).issues;
    expect(issues.length).toBeGreaterThan(0);
    expect(
      issues.some((i) => message.includes(i.message) || i.message.includes(message) || err.message.includes(i.message)),
    ).toBe(true);
  });
});

describe("policy input: defaults and normalisation", () => {
  test("priority 0, enabled true, scope {} by default", () => {
    const p = parsePolicyInput({ name: "w", type: "whitelist", config: { departments: [" eng "] } });
    expect(p).toEqual({
      name: "w",
      type: "whitelist",
      priority: 0,
      enabled: true,
      scope: {},
      config: { departments: ["eng"] },
    });
  });

  test("notBefore/notAfter accept ISO-8601 and epoch ms, normalised to ms; zone spelled canonically", () => {
    const p = parsePolicyInput(
      tb({ timezone: "america/new_york", notBefore: "2026-01-01T00:00:00-05:00", notAfter: 1798761600000 }),
    );
    expect(p.type).toBe("time-based");
    if (p.type !== "time-based") return;
    expect(p.config).toEqual({
      timezone: "America/New_York",
      notBefore: Date.UTC(2026, 0, 1, 5),
      notAfter: 1798761600000,
    });
  });

  test("a validated policy re-validates to itself (stored rows round-trip)", () => {
    const p = parsePolicyInput(
      tb({
        days: ["mon"],
        hours: { from: "22:00", to: "06:00" },
        notBefore: "2026-01-01T00:00:00Z",
        maxDataAgeSeconds: 60,
        allowFuture: true,
      }),
    );
    expect(parsePolicyInput(p)).toEqual(p);
    expect(parsePolicyRecord({ ...p, id: "x", version: 4, description: null })).toEqual({ ...p, id: "x", version: 4 });
  });
});

describe("access request body", () => {
  const body = (timeRange: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    resource: { type: "token", integration: "gmail", userId: "user-1@example.com" },
    timeRange,
    ...extra,
  });

  test.each([
    [
      "ISO with Z",
      { start: "2026-03-08T09:00:00Z", end: "2026-03-08T10:00:00.5Z" },
      Date.UTC(2026, 2, 8, 9),
      Date.UTC(2026, 2, 8, 10, 0, 0, 500),
    ],
    [
      "ISO with offset",
      { start: "2026-03-08T09:00:00+01:00", end: "2026-03-08T09:00:00-05:00" },
      Date.UTC(2026, 2, 8, 8),
      Date.UTC(2026, 2, 8, 14),
    ],
    ["epoch ms", { start: 1772960400000, end: 1772964000000 }, 1772960400000, 1772964000000],
    ["mixed", { start: 0, end: "1970-01-01T00:00:01Z" }, 0, 1000],
    ["empty range (end == start)", { start: 5, end: 5 }, 5, 5],
    ["latest instant", { start: MAX_INSTANT_MS - 1000, end: MAX_INSTANT_MS }, MAX_INSTANT_MS - 1000, MAX_INSTANT_MS],
  ] as const)("%s is normalised to epoch ms", (_label, timeRange, start, end) => {
    expect(parseAccessRequestBody(body(timeRange)).timeRange).toEqual({ start, end });
  });

  test.each([
    [
      "end before start",
      body({ start: "2026-03-08T10:00:00Z", end: "2026-03-08T09:00:00Z" }),
      "timeRange.end: timeRange.end must not be before timeRange.start",
    ],
    ["before 1970", body({ start: -1, end: 0 }), "must not be before 1970-01-01"],
    ["ISO before 1970", body({ start: "1969-12-31T23:59:59Z", end: 0 }), "must not be before 1970-01-01"],
    ["after year 9999", body({ start: 0, end: MAX_INSTANT_MS + 1 }), "must not be after 9999-12-31"],
    ["absurd range", body({ start: 0, end: Date.UTC(2200, 0, 1) }), "must not span more than 100 years"],
    ["fractional ms", body({ start: 1.5, end: 2 }), "epoch milliseconds must be a finite integer"],
    ["no offset", body({ start: "2026-03-08T09:00:00", end: "2026-03-08T10:00:00Z" }), "with a Z or ±HH:MM offset"],
    ["date only", body({ start: "2026-03-08", end: "2026-03-09T00:00:00Z" }), "with a Z or ±HH:MM offset"],
    ["impossible date", body({ start: "2026-02-30T00:00:00Z", end: "2026-03-09T00:00:00Z" }), "ISO-8601"],
    ["boolean time", body({ start: true, end: 1 }), "must be an ISO-8601 date-time string or epoch milliseconds"],
    ["missing end", body({ start: 1 }), "timeRange.end"],
    ["unknown field in timeRange", body({ start: 1, end: 2, tz: "UTC" }), 'Unrecognized key: "tz"'],
    [
      "purpose too long",
      body({ start: 1, end: 2 }, { purpose: "x".repeat(501) }),
      "purpose must be at most 500 characters",
    ],
    [
      "control characters in purpose",
      body({ start: 1, end: 2 }, { purpose: "a\u0001b" }),
      "purpose must not contain control characters",
    ],
    [
      "NUL in purpose",
      body({ start: 1, end: 2 }, { purpose: "a\u0000b" }),
      "purpose must not contain NUL characters or unpaired surrogates",
    ],
    [
      "unpaired surrogate in purpose",
      body({ start: 1, end: 2 }, { purpose: "a\ud800b" }),
      "purpose must not contain NUL characters or unpaired surrogates",
    ],
    ["unknown top-level field", body({ start: 1, end: 2 }, { requesterId: "root" }), 'Unrecognized key: "requesterId"'],
    [
      "timeslice with an integration",
      { resource: { type: "timeslice", integration: "gmail" }, timeRange: { start: 1, end: 2 } },
      'Unrecognized key: "integration"',
    ],
    [
      "token without userId",
      { resource: { type: "token", integration: "gmail" }, timeRange: { start: 1, end: 2 } },
      "resource.userId: userId is required",
    ],
    [
      "unsafe integration",
      { resource: { type: "token", integration: "../etc", userId: "u" }, timeRange: { start: 1, end: 2 } },
      "integration must be 1–128 characters",
    ],
    [
      "overlong userId",
      { resource: { type: "token", integration: "gmail", userId: "u".repeat(129) }, timeRange: { start: 1, end: 2 } },
      "userId must be 1–128 characters",
    ],
    [
      "unknown resource type",
      { resource: { type: "file" }, timeRange: { start: 1, end: 2 } },
      'resource.type must be "token" or "timeslice"',
    ],
  ] as const)("rejects %s", (_label, input, message) => {
    const err = rejection(() => parseAccessRequestBody(input));
    expect(err.message).toContain(message);
  });

  test("purpose is trimmed; absent stays absent", () => {
    expect(parseAccessRequestBody(body({ start: 1, end: 2 }, { purpose: "  support ticket 42 " })).purpose).toBe(
      "support ticket 42",
    );
    expect("purpose" in parseAccessRequestBody(body({ start: 1, end: 2 }))).toBe(false);
  });

  test("the schema itself is a plain zod schema (usable by @hono/zod-openapi)", () => {
    expect(
      AccessRequestBodySchema.safeParse({ resource: { type: "timeslice" }, timeRange: { start: 1, end: 2 } }).success,
    ).toBe(true);
  });
});

describe("applyPolicyPatch", () => {
  const existing: PolicyFields = {
    name: "business-hours",
    type: "time-based",
    priority: 10,
    enabled: true,
    scope: { resourceTypes: ["timeslice"] },
    config: { timezone: "America/New_York", hours: { from: "09:00", to: "17:00" }, notBefore: Date.UTC(2026, 0, 1) },
    description: "office hours only",
  };

  test("shallow merge: untouched fields kept, scope and config replaced whole", () => {
    const merged = applyPolicyPatch(existing, { priority: 20, scope: { requesters: ["bob"] } });
    expect(merged).toMatchObject({
      name: "business-hours",
      priority: 20,
      scope: { requesters: ["bob"] },
      description: "office hours only",
    });
    expect(merged.config).toEqual(existing.config as never);
  });

  test("config is validated against the existing type", () => {
    const err = rejection(() => applyPolicyPatch(existing, { config: { timezone: "Mars/Base" } }));
    expect(err.message).toContain('config.timezone: unknown IANA time zone "Mars/Base"');
    expect((err.details as { issues: { path: unknown[] }[] }).issues[0]?.path).toEqual(["config", "timezone"]);
  });

  test("config is validated against the new type", () => {
    expect(applyPolicyPatch(existing, { type: "duration-limit", config: { maxSeconds: 3600 } })).toMatchObject({
      type: "duration-limit",
      config: { maxSeconds: 3600 },
    });
    expect(
      rejection(() => applyPolicyPatch(existing, { type: "duration-limit", config: { maxSeconds: -1 } })).message,
    ).toContain("maxSeconds must be positive");
  });

  test("changing type without a config is refused", () => {
    expect(rejection(() => applyPolicyPatch(existing, { type: "purpose" })).message).toContain(
      'changing type from "time-based" to "purpose" requires a new config',
    );
  });

  test("description: null clears it", () => {
    expect("description" in applyPolicyPatch(existing, { description: null })).toBe(false);
  });

  test.each([
    ["unknown field", { owner: "me" }, 'Unrecognized key: "owner"'],
    ["empty patch", {}, "a policy patch must change at least one field"],
    ["bad priority", { priority: "high" }, "priority must be a number"],
    ["not an object", "x", "invalid policy patch"],
  ] as const)("rejects %s", (_label, patch, message) => {
    expect(rejection(() => applyPolicyPatch(existing, patch)).message).toContain(message);
  });
});
