/**
 * Routers are OpenAPIHono instances so that one zod schema per route validates the input, types
 * the handler and documents the route. Validation failures become our single error shape.
 */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { toValidationError } from "../lib/validation-error.ts";
import type { AppEnv } from "./context.ts";

export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw toValidationError(result.error, result.target === "json" ? "body" : result.target);
    },
  });
}

/** The error body as an OpenAPI schema, referenced by every route's error responses. */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "VALIDATION_FAILED" }),
      message: z.string(),
      details: z.unknown().optional(),
      requestId: z.string().optional(),
    }),
  })
  .openapi("Error");

export const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: ErrorSchema } },
});
