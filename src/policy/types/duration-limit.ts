/** `duration-limit`: caps the length of the requested (for grants: covered) time range. */
import { z } from "zod";
import { MAX_CONFIG_SECONDS, typeError } from "../../lib/schemas.ts";
import { formatDuration } from "../format.ts";
import { definePolicyType, deny } from "../type-module.ts";

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

export type DurationLimitConfig = z.output<typeof DurationLimitConfigSchema>;

export const durationLimit = definePolicyType({
  type: "duration-limit",
  summary: "Caps the length of the requested time range",
  example: { maxSeconds: 86400 },
  config: DurationLimitConfigSchema,
  role: "restriction",
  compile(config, label) {
    const maxMs = config.maxSeconds * 1000;
    const limitText = formatDuration(maxMs);
    return (ctx) => {
      const length = ctx.timeRange.end - ctx.timeRange.start;
      // `!(x <= y)` rather than `x > y`, so a NaN length denies.
      if (!(length <= maxMs)) {
        return deny(
          "RANGE_TOO_LONG",
          `requested range of ${formatDuration(length)} exceeds the ${limitText} limit (${label})`,
        );
      }
      return {
        outcome: "passed",
        reason: `requested range of ${formatDuration(length)} is within the ${limitText} limit (${label})`,
      };
    };
  },
});
