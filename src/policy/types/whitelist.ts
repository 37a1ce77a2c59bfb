/** `whitelist`: admits requesters by external id or by department (SPEC §5). */
import { z } from "zod";
import { MAX_LIST_ITEMS, identifier, text } from "../../lib/schemas.ts";
import { describeRequester, quote } from "../format.ts";
import { definePolicyType } from "../type-module.ts";

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

export type WhitelistConfig = z.output<typeof WhitelistConfigSchema>;

export const whitelist = definePolicyType({
  type: "whitelist",
  summary: "Admits requesters by external id or department",
  example: { requesters: ["billing-service"] },
  config: WhitelistConfigSchema,
  role: "whitelist",
  compile(config, label) {
    const requesters = new Set(config.requesters ?? []);
    const departments = new Set(config.departments ?? []);
    return (ctx) => {
      const { requesterId, department } = ctx.requester;
      if (requesters.has(requesterId)) {
        return { outcome: "admitted", reason: `requester ${quote(requesterId)} is listed by ${label}` };
      }
      if (department != null && departments.has(department)) {
        return {
          outcome: "admitted",
          reason: `requester ${quote(requesterId)} is admitted by ${label} through department ${quote(department)}`,
        };
      }
      return { outcome: "not-admitted", reason: `${describeRequester(ctx)} is not admitted by ${label}` };
    };
  },
});
