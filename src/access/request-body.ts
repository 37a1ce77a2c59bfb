/**
 * The access-request body (SPEC §5): what a requester asks for, over which data range, and why.
 * The requester itself comes from the API key, never from the body.
 */
import { z } from "zod";
import { InstantSchema, MAX_PURPOSE_LENGTH, MAX_RANGE_MS, identifier, text } from "../lib/schemas.ts";
import { parseWith } from "../lib/validation-error.ts";

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

/** A data range: closed, both ends inclusive (see lib/schemas.ts on instants). */
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

export type Resource = z.output<typeof ResourceSchema>;
export type TimeRange = z.output<typeof TimeRangeSchema>;
export type AccessRequestBody = z.output<typeof AccessRequestBodySchema>;
export type AccessRequestBodyRaw = z.input<typeof AccessRequestBodySchema>;

export function parseAccessRequestBody(input: unknown): AccessRequestBody {
  return parseWith(AccessRequestBodySchema, input, "access request");
}
