/**
 * `purpose-denylist`: denies requests whose purpose is one of a list (e.g. "marketing"), compared
 * after trimming and case-insensitively so "Marketing " is caught too. A request without a
 * purpose passes: requiring one is the `purpose` type's job.
 */
import { z } from "zod";
import { MAX_PURPOSE_LENGTH, list, text } from "../../lib/schemas.ts";
import { quote } from "../format.ts";
import { definePolicyType, deny } from "../type-module.ts";

export const PurposeDenylistConfigSchema = z
  .strictObject({
    denied: list(text("denied purpose", MAX_PURPOSE_LENGTH), "denied").describe(
      "Purposes refused (after trimming, case-insensitive)",
    ),
  })
  .describe("Refuses requests made for listed purposes");

export type PurposeDenylistConfig = z.output<typeof PurposeDenylistConfigSchema>;

export const purposeDenylist = definePolicyType({
  type: "purpose-denylist",
  summary: "Refuses requests made for listed purposes",
  example: { denied: ["marketing"] },
  config: PurposeDenylistConfigSchema,
  role: "restriction",
  compile(config, label) {
    const denied = new Set(config.denied.map((p) => p.toLowerCase()));
    return (ctx) => {
      const purpose = typeof ctx.purpose === "string" ? ctx.purpose.trim() : "";
      if (purpose !== "" && denied.has(purpose.toLowerCase())) {
        return deny("PURPOSE_NOT_ALLOWED", `purpose ${quote(purpose)} is refused by ${label}`);
      }
      return { outcome: "passed", reason: `the purpose is not one ${label} refuses` };
    };
  },
});
