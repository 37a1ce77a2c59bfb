/**
 * Zod schemas for the access-control shapes of SPEC §5: policies (config validated per type),
 * policy patches and access-request bodies. Plain zod 4 objects so the HTTP layer can hand them to
 * @hono/zod-openapi unchanged; every object is strict, so unknown fields are rejected, not dropped.
 */
import { z } from "zod";
import { WEEKDAYS, canonicalTimeZone, parseHHMM } from "./time.ts";
import { safeString } from "../lib/text.ts";

// ---------------------------------------------------------------------------------------------
// Limits. Chosen so that every accepted value is meaningful and every derived number stays exact.

/** Earliest instant accepted anywhere: slice indices are unsigned, so nothing before the epoch. */
export const MIN_INSTANT_MS = 0;
/**
 * Latest instant accepted. The 32-bit slice space of 1 h slices reaches year ~490,000, but
 * ISO-8601 without expanded years stops at 9999 and nothing real lives beyond it.
 */
export const MAX_INSTANT_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/**
 * Longest time range one access request may name, whatever the policies say: 100 years. Longer
 * ranges are almost certainly mistakes (a seconds/milliseconds mix-up) rather than intent.
 */
export const MAX_RANGE_MS = 100 * 366 * 86_400_000;
/** Upper bound for second-valued config (max age, max duration): the same 100 years. */
export const MAX_CONFIG_SECONDS = MAX_RANGE_MS / 1000;
/** Bounded lists keep a policy row, and the work done per request, small. */
export const MAX_LIST_ITEMS = 1000;
export const MAX_PURPOSE_LENGTH = 500;

/**
 * External ids (requester ids, integration names, user ids): 1–128 characters from a charset that
 * is safe in URLs, logs, JWE `ctx` strings and reasons, and covers emails and `provider:id` forms.
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9._:@+-]{1,128}$/;
// The Cc category spelled as ranges, without the u flag, so the pattern survives into OpenAPI.
const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f-\u009f]*$/;

/** Type-error text that tells a missing field from a wrongly typed one. */
const typeError = (what: string, expected: string) => (iss: { input?: unknown }) =>
  iss.input === undefined ? `${what} is required` : `${what} must be ${expected}`;

export const identifier = (what: string) =>
  safeString(what)
    .regex(IDENTIFIER_PATTERN, {
      error: (iss) => `${what} must be 1–128 characters from A–Z a–z 0–9 . _ : @ + - (got ${preview(iss.input)})`,
    })
    .describe(`${what}: 1–128 characters from A–Z a–z 0–9 . _ : @ + -`);

/** Human text (names, departments, purposes): trimmed, bounded, no control characters. */
export const text = (what: string, max: number, min = 1) =>
  safeString(what)
    .trim()
    .min(min, { error: `${what} must not be empty` })
    .max(max, { error: `${what} must be at most ${max} characters` })
    .regex(NO_CONTROL_CHARS, { error: `${what} must not contain control characters` });

function preview(input: unknown): string {
  const s = typeof input === "string" ? input : String(input);
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}

/**
 * A non-empty list. Present-but-empty is refused rather than read as "matches nothing" or
 * "matches everything": omitting the field is the one way to say "no restriction".
 */
const list = <T extends z.ZodType>(item: T, what: string) =>
  z
    .array(item, { error: `${what} must be an array` })
    .min(1, { error: `${what} must not be empty (omit it to leave it unrestricted)` })
    .max(MAX_LIST_ITEMS, { error: `${what} must have at most ${MAX_LIST_ITEMS} entries` });

// ---------------------------------------------------------------------------------------------
// Instants

const isoDateTime = z.iso.datetime({ offset: true });

/**
 * An instant as an ISO-8601 date-time with `Z` or a ±HH:MM offset, or as epoch milliseconds;
 * normalised to epoch ms. Local date-times without an offset are refused: their zone is a guess.
 */
export const InstantSchema = z
  .union([safeString("instant"), z.number()], {
    error: "must be an ISO-8601 date-time string or epoch milliseconds",
  })
  .transform((value, ctx): number => {
    let ms: number;
    if (typeof value === "string") {
      if (!isoDateTime.safeParse(value).success) {
        ctx.issues.push({
          code: "custom",
          input: value,
          message: `must be an ISO-8601 date-time with a Z or ±HH:MM offset, e.g. 2026-03-08T09:00:00Z (got ${preview(value)})`,
        });
        return z.NEVER;
      }
      ms = Date.parse(value);
    } else {
      if (!Number.isFinite(value) || !Number.isInteger(value)) {
        ctx.issues.push({ code: "custom", input: value, message: "epoch milliseconds must be a finite integer" });
        return z.NEVER;
      }
      ms = value;
    }
    if (!Number.isFinite(ms) || ms < MIN_INSTANT_MS) {
      ctx.issues.push({ code: "custom", input: value, message: "must not be before 1970-01-01T00:00:00Z" });
      return z.NEVER;
    }
    if (ms > MAX_INSTANT_MS) {
      ctx.issues.push({ code: "custom", input: value, message: "must not be after 9999-12-31T23:59:59.999Z" });
      return z.NEVER;
    }
    return ms;
  })
  .describe("ISO-8601 date-time with offset (e.g. 2026-03-08T09:00:00Z) or epoch milliseconds");

// ---------------------------------------------------------------------------------------------
// Policies

export const RESOURCE_TYPES = ["token", "timeslice"] as const;
export const ResourceTypeSchema = z.enum(RESOURCE_TYPES, {
  error: 'resource type must be "token" or "timeslice"',
});

export const POLICY_TYPES = ["whitelist", "time-based", "duration-limit", "purpose"] as const;
export const PolicyTypeSchema = z.enum(POLICY_TYPES, {
  error: `type must be one of ${POLICY_TYPES.map((t) => `"${t}"`).join(", ")}`,
});

export const PolicyScopeSchema = z
  .strictObject({
    resourceTypes: list(ResourceTypeSchema, "scope.resourceTypes")
      .optional()
      .describe("Resource types the policy applies to; omitted = all"),
    integrations: list(identifier("integration"), "scope.integrations")
      .optional()
      .describe(
        "Token integrations the policy applies to; omitted = all. A policy scoped to integrations never applies to timeslice requests",
      ),
    requesters: list(identifier("requester id"), "scope.requesters")
      .optional()
      .describe("External requester ids the policy applies to; omitted = all"),
  })
  .describe("Which requests the policy applies to: every listed dimension must match");

export const WhitelistConfigSchema = z
  .strictObject({
    requesters: z
      .array(identifier("requester id"))
      .max(MAX_LIST_ITEMS, { error: `requesters must have at most ${MAX_LIST_ITEMS} entries` })
      .optional()
      .describe("External requester ids admitted"),
    departments: z
      .array(text("department", 128))
      .max(MAX_LIST_ITEMS, { error: `departments must have at most ${MAX_LIST_ITEMS} entries` })
      .optional()
      .describe("Departments admitted (exact, case-sensitive match)"),
  })
  // A whitelist that admits nobody can only ever deny, which a reader would not guess from its
  // type; refuse it and make "deny everyone" an explicit absence of whitelists instead.
  .refine((c) => (c.requesters?.length ?? 0) + (c.departments?.length ?? 0) > 0, {
    error: "a whitelist must name at least one requester or department",
  })
  .describe("Admits requesters by external id or by department");

const hhmm = (what: string) =>
  safeString(what).regex(/^([01]\d|2[0-3]):[0-5]\d$/, {
    error: (iss) => `${what} must be "HH:MM" with HH 00–23 and MM 00–59 (got ${preview(iss.input)})`,
  });

export const HoursSchema = z
  .strictObject({
    from: hhmm("hours.from").describe("Start of the daily window, inclusive"),
    to: hhmm("hours.to").describe("End of the daily window, exclusive; earlier than from = wraps midnight"),
  })
  // from == to could mean "never" or "always"; neither is worth the ambiguity.
  .refine((h) => h.from !== h.to || parseHHMM(h.from) === null, {
    error: "hours.from and hours.to must differ (omit hours to allow the whole day)",
  })
  .describe("Daily local-time window [from, to); may wrap midnight (22:00–06:00)");

export const TimeBasedConfigSchema = z
  .strictObject({
    timezone: safeString("timezone")
      .transform((tz, ctx): string => {
        const canonical = canonicalTimeZone(tz);
        if (canonical === null) {
          ctx.issues.push({
            code: "custom",
            input: tz,
            message: `unknown IANA time zone ${preview(tz)} (use a name such as "Europe/Berlin" or "UTC")`,
          });
          return z.NEVER;
        }
        return canonical;
      })
      .describe("IANA time zone the days and hours are read in, e.g. America/New_York"),
    days: list(z.enum(WEEKDAYS, { error: 'days must be among "mon" … "sun"' }), "days")
      .refine((d) => new Set(d).size === d.length, { error: "days must not repeat" })
      .optional()
      .describe("Local weekdays on which requests may be made; omitted = every day"),
    hours: HoursSchema.optional(),
    notBefore: InstantSchema.optional().describe("No request is admitted before this instant (inclusive bound)"),
    notAfter: InstantSchema.optional().describe("No request is admitted after this instant (inclusive bound)"),
    maxDataAgeSeconds: z
      .number({ error: "maxDataAgeSeconds must be a number" })
      .int({ error: "maxDataAgeSeconds must be a whole number of seconds" })
      .positive({ error: "maxDataAgeSeconds must be positive" })
      .max(MAX_CONFIG_SECONDS, { error: `maxDataAgeSeconds must be at most ${MAX_CONFIG_SECONDS} (100 years)` })
      .optional()
      .describe("Requested data may start at most this many seconds before the request"),
    allowFuture: z
      .boolean({ error: "allowFuture must be true or false" })
      .optional()
      .describe("Whether the requested range may end after the request instant (default false)"),
  })
  .superRefine((c, ctx) => {
    if (c.notBefore !== undefined && c.notAfter !== undefined && c.notBefore > c.notAfter) {
      ctx.addIssue({ code: "custom", path: ["notAfter"], message: "notBefore must not be after notAfter" });
    }
  })
  .describe("When requests may be made, and which data times they may ask for");

export const DurationLimitConfigSchema = z
  .strictObject({
    maxSeconds: z
      .number({ error: typeError("maxSeconds", "a number") })
      .int({ error: "maxSeconds must be a whole number of seconds" })
      .positive({ error: "maxSeconds must be positive" })
      .max(MAX_CONFIG_SECONDS, { error: `maxSeconds must be at most ${MAX_CONFIG_SECONDS} (100 years)` })
      .describe("Longest time range (end − start) one request may cover, in seconds"),
  })
  .describe("Caps the length of the requested time range");

export const PurposeConfigSchema = z
  .strictObject({
    allowed: list(text("allowed purpose", MAX_PURPOSE_LENGTH), "allowed")
      .optional()
      .describe("If given, the purpose must be exactly one of these (after trimming)"),
    minLength: z
      .number({ error: "minLength must be a number" })
      .int({ error: "minLength must be a whole number" })
      .min(1, { error: "minLength must be at least 1" })
      .max(MAX_PURPOSE_LENGTH, { error: `minLength must be at most ${MAX_PURPOSE_LENGTH}` })
      .optional()
      .describe("Minimum purpose length in characters, after trimming"),
  })
  .superRefine((c, ctx) => {
    if (c.allowed === undefined || c.minLength === undefined) return;
    for (const [i, p] of c.allowed.entries()) {
      if (p.length < c.minLength) {
        ctx.addIssue({
          code: "custom",
          path: ["allowed", i],
          message: `allowed purpose ${preview(p)} is shorter than minLength ${c.minLength}, so it could never be used`,
        });
      }
    }
  })
  .describe("Requires a purpose, optionally from a fixed list");

const policyName = text("name", 128).describe("Unique, human-readable policy name");
const description = text("description", 1000, 0);

/**
 * Defaults, applied on create: priority 0, enabled true, scope {} (applies to every request). A
 * new policy is live at once, as in Vault and AWS; send enabled: false to stage one.
 */
const policyBase = {
  name: policyName,
  priority: z
    .number({ error: "priority must be a number" })
    .int({ error: "priority must be an integer" })
    .min(-1_000_000, { error: "priority must be at least -1000000" })
    .max(1_000_000, { error: "priority must be at most 1000000" })
    .default(0)
    .describe("Higher is evaluated first and wins when reporting the deciding policy"),
  enabled: z.boolean({ error: "enabled must be true or false" }).default(true),
  scope: PolicyScopeSchema.default({}),
  description: description.optional(),
};

export const WhitelistPolicyInputSchema = z.strictObject({
  ...policyBase,
  type: z.literal("whitelist"),
  config: WhitelistConfigSchema,
});
export const TimeBasedPolicyInputSchema = z.strictObject({
  ...policyBase,
  type: z.literal("time-based"),
  config: TimeBasedConfigSchema,
});
export const DurationLimitPolicyInputSchema = z.strictObject({
  ...policyBase,
  type: z.literal("duration-limit"),
  config: DurationLimitConfigSchema,
});
export const PurposePolicyInputSchema = z.strictObject({
  ...policyBase,
  type: z.literal("purpose"),
  config: PurposeConfigSchema,
});

export const PolicyInputSchema = z
  .discriminatedUnion(
    "type",
    [WhitelistPolicyInputSchema, TimeBasedPolicyInputSchema, DurationLimitPolicyInputSchema, PurposePolicyInputSchema],
    { error: `type must be one of ${POLICY_TYPES.map((t) => `"${t}"`).join(", ")}` },
  )
  .describe("A policy; config is validated against its type");

/**
 * PATCH body: any subset of the policy fields, merged shallowly by `applyPolicyPatch` (scope and
 * config are replaced whole, never deep-merged). `config` is checked there, against the
 * resulting type; `description: null` clears the description.
 */
export const PolicyPatchSchema = z
  .strictObject({
    name: policyName.optional(),
    type: PolicyTypeSchema.optional(),
    priority: policyBase.priority.unwrap().optional(),
    enabled: z.boolean({ error: "enabled must be true or false" }).optional(),
    scope: PolicyScopeSchema.optional(),
    config: z.unknown().optional().describe("Replaces the config; validated against the policy's (new) type"),
    description: description.nullable().optional(),
  })
  .refine((p) => Object.values(p).some((v) => v !== undefined), {
    error: "a policy patch must change at least one field",
  })
  .describe("Partial policy update");

// ---------------------------------------------------------------------------------------------
// Access requests

export const TimesliceResourceSchema = z.strictObject({ type: z.literal("timeslice") });
export const TokenResourceSchema = z.strictObject({
  type: z.literal("token"),
  integration: identifier("integration"),
  userId: identifier("userId"),
});
export const ResourceSchema = z
  .discriminatedUnion("type", [TimesliceResourceSchema, TokenResourceSchema], {
    error: 'resource.type must be "token" or "timeslice"',
  })
  .describe("What is asked for: a token record or time-slice keys");

export const TimeRangeSchema = z
  .strictObject({
    start: InstantSchema.describe("Start of the data range (inclusive)"),
    end: InstantSchema.describe("End of the data range (inclusive); may equal start"),
  })
  .superRefine((r, ctx) => {
    if (r.end < r.start) {
      ctx.addIssue({ code: "custom", path: ["end"], message: "timeRange.end must not be before timeRange.start" });
    } else if (r.end - r.start > MAX_RANGE_MS) {
      ctx.addIssue({ code: "custom", path: ["end"], message: "timeRange must not span more than 100 years" });
    }
  })
  .describe("Data time range, normalised to epoch milliseconds");

export const AccessRequestBodySchema = z
  .strictObject(
    {
      resource: ResourceSchema,
      timeRange: TimeRangeSchema,
      purpose: text("purpose", MAX_PURPOSE_LENGTH, 0)
        .optional()
        .describe("Why the data is needed; required by purpose policies; trimmed"),
      keyVersion: z
        .number({ error: "keyVersion must be a whole number" })
        .int({ error: "keyVersion must be a whole number" })
        .min(1, { error: "keyVersion must be at least 1" })
        .max(1_000_000, { error: "keyVersion is too large" })
        .optional()
        .describe(
          "Time-slice grants: the master key version to derive from (default: the active one). Data sealed before a rotation is under an older, decrypt-only version.",
        ),
    },
    // Only the type error: an object-level `error` would also replace "Unrecognized key" messages.
    { error: (iss) => (iss.code === "invalid_type" ? "the access request body must be a JSON object" : undefined) },
  )
  .describe("An access request: requester comes from the API key");

// ---------------------------------------------------------------------------------------------
// Types

export type ResourceType = z.infer<typeof ResourceTypeSchema>;
export type PolicyType = z.infer<typeof PolicyTypeSchema>;
export type PolicyScope = z.output<typeof PolicyScopeSchema>;
export type WhitelistConfig = z.output<typeof WhitelistConfigSchema>;
export type TimeBasedConfig = z.output<typeof TimeBasedConfigSchema>;
export type DurationLimitConfig = z.output<typeof DurationLimitConfigSchema>;
export type PurposeConfig = z.output<typeof PurposeConfigSchema>;
/** A validated policy, defaults applied and instants normalised to epoch ms. */
export type PolicyInput = z.output<typeof PolicyInputSchema>;
/** What a client may send (defaults optional, instants as strings or numbers). */
export type PolicyInputRaw = z.input<typeof PolicyInputSchema>;
export type PolicyPatch = z.output<typeof PolicyPatchSchema>;
export type Resource = z.output<typeof ResourceSchema>;
export type TimeRange = z.output<typeof TimeRangeSchema>;
export type AccessRequestBody = z.output<typeof AccessRequestBodySchema>;
export type AccessRequestBodyRaw = z.input<typeof AccessRequestBodySchema>;
