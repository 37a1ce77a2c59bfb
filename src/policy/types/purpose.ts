/** `purpose`: a purpose is required, optionally one from a fixed list. */
import { z } from "zod";
import { MAX_PURPOSE_LENGTH, list, preview, text } from "../../lib/schemas.ts";
import { quote, quoteList } from "../format.ts";
import { definePolicyType, deny } from "../type-module.ts";

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

export type PurposeConfig = z.output<typeof PurposeConfigSchema>;

export const purpose = definePolicyType({
  type: "purpose",
  summary: "Requires a purpose, optionally from a fixed list",
  example: { allowed: ["support"], minLength: 3 },
  config: PurposeConfigSchema,
  role: "restriction",
  compile(config, label) {
    const allowed = config.allowed ? new Set(config.allowed) : null;
    const allowedText = config.allowed ? quoteList(config.allowed) : "";
    const minLength = config.minLength ?? 1;
    return (ctx) => {
      const purpose = typeof ctx.purpose === "string" ? ctx.purpose.trim() : "";
      if (purpose === "") return deny("PURPOSE_REQUIRED", `a purpose is required (${label})`);
      if (purpose.length < minLength) {
        return deny(
          "PURPOSE_TOO_SHORT",
          `purpose must be at least ${minLength} characters, got ${purpose.length} (${label})`,
        );
      }
      if (allowed !== null && !allowed.has(purpose)) {
        return deny("PURPOSE_NOT_ALLOWED", `purpose ${quote(purpose)} is not one of ${allowedText} (${label})`);
      }
      return { outcome: "passed", reason: `purpose ${quote(purpose)} satisfies ${label}` };
    };
  },
});
