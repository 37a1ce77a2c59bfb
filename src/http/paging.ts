/**
 * The query and response pieces of every list route (the paging style in src/lib/keyset-cursor.ts):
 * `limit` (1..max, a per-list default), an opaque `cursor`, and `{ items, nextCursor }`.
 */
import { z } from "@hono/zod-openapi";
import { safeString } from "../lib/text.ts";

export const cursorQuery = safeString("cursor")
  .min(1, { error: "cursor must not be empty" })
  .max(512, { error: "cursor must be at most 512 characters" })
  .optional()
  .openapi({ description: "the nextCursor of the previous page, unchanged (opaque)" });

export function limitQuery(max: number, byDefault: number) {
  return z.coerce
    .number({ error: "limit must be a number" })
    .int({ error: "limit must be a whole number" })
    .min(1, { error: "limit must be at least 1" })
    .max(max, { error: `limit must be at most ${max}` })
    .default(byDefault)
    .openapi({ description: `page size, 1..${max} (default ${byDefault})`, example: byDefault });
}

/** `{ items, nextCursor }` of `item`, registered in the OpenAPI document as `name`. */
export function pageSchema<T extends z.ZodType>(item: T, name: string) {
  return z
    .object({
      items: z.array(item),
      nextCursor: z
        .string()
        .nullable()
        .openapi({ description: "pass back as cursor for the next page; null on the last page" }),
    })
    .openapi(name);
}
