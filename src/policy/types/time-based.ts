/**
 * `time-based`: when a request may be made (IANA zone, weekdays, daily hours that may wrap
 * midnight, notBefore/notAfter) and which data times it may ask for (max age, future data).
 */
import { z } from "zod";
import { InstantSchema, MAX_CONFIG_SECONDS, list, preview } from "../../lib/schemas.ts";
import { safeString } from "../../lib/text.ts";
import { formatDuration, formatInstant } from "../format.ts";
import {
  WEEKDAYS,
  canonicalTimeZone,
  formatHHMM,
  formatLocal,
  isWithinHours,
  parseHHMM,
  weekdayName,
  zonedParts,
  type Weekday,
} from "../time.ts";
import { definePolicyType, deny, type Check } from "../type-module.ts";

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
          ctx.addIssue({
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

export type TimeBasedConfig = z.output<typeof TimeBasedConfigSchema>;

export const timeBased = definePolicyType({
  type: "time-based",
  summary: "When requests may be made, and which data times they may ask for",
  example: { timezone: "UTC", days: ["mon", "tue", "wed", "thu", "fri"], hours: { from: "08:00", to: "18:00" } },
  config: TimeBasedConfigSchema,
  role: "restriction",
  allowsFuture: (config) => config.allowFuture === true,
  compile: compileTimeBased,
});

function compileTimeBased(config: TimeBasedConfig, label: string): Check {
  const tz = config.timezone;
  // Builds and caches the zone's formatter now; throws (→ misconfigured) for an unknown zone.
  zonedParts(0, tz);
  const days: ReadonlySet<Weekday> | null = config.days ? new Set(config.days) : null;
  const daysText = config.days?.join(", ") ?? "";
  const from = config.hours ? parseHHMM(config.hours.from) : null;
  const to = config.hours ? parseHHMM(config.hours.to) : null;
  if (config.hours && (from === null || to === null))
    throw new Error(`malformed hours ${JSON.stringify(config.hours)}`);
  const windowText = from !== null && to !== null ? `${formatHHMM(from)}–${formatHHMM(to)}` : "";
  const { notBefore, notAfter, maxDataAgeSeconds } = config;
  const maxAgeMs = maxDataAgeSeconds === undefined ? null : maxDataAgeSeconds * 1000;
  const allowFuture = config.allowFuture === true;
  const needsClock = days !== null || from !== null;

  return (ctx, now) => {
    if (notBefore !== undefined && now < notBefore) {
      return deny(
        "OUTSIDE_TIME_WINDOW",
        `request at ${formatInstant(now)} is before ${formatInstant(notBefore)}, when ${label} starts admitting requests`,
      );
    }
    if (notAfter !== undefined && now > notAfter) {
      return deny(
        "OUTSIDE_TIME_WINDOW",
        `request at ${formatInstant(now)} is after ${formatInstant(notAfter)}, when ${label} stopped admitting requests`,
      );
    }
    if (needsClock) {
      const local = zonedParts(now, tz);
      if (days !== null && !days.has(local.weekday)) {
        return deny(
          "OUTSIDE_TIME_WINDOW",
          `request on ${weekdayName(local.weekday)} (${formatLocal(local)} ${tz}) is not on an allowed day (${daysText}) (${label})`,
        );
      }
      if (from !== null && to !== null && !isWithinHours(local.minutesOfDay, from, to)) {
        return deny(
          "OUTSIDE_TIME_WINDOW",
          `request at ${formatHHMM(local.minutesOfDay)} ${tz} is outside ${windowText} (${label})`,
        );
      }
    }
    const { start, end } = ctx.timeRange;
    if (maxAgeMs !== null && start < now - maxAgeMs) {
      return deny(
        "DATA_TOO_OLD",
        `requested data from ${formatInstant(start)} is older than the ${formatDuration(maxAgeMs)} ${label} allows (earliest ${formatInstant(now - maxAgeMs)})`,
      );
    }
    if (!allowFuture && end > now) {
      return deny(
        "FUTURE_DATA",
        `requested data up to ${formatInstant(end)} lies after the request time ${formatInstant(now)}, and ${label} does not allow future data`,
      );
    }
    return { outcome: "passed", reason: `request time and data range are within ${label}` };
  };
}
