/**
 * Routers are OpenAPIHono instances so that one zod schema per route validates the input, types
 * the handler and documents the route. Validation failures become our single error shape.
 */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { toValidationError } from "../lib/validation-error.ts";
import type { AppEnv } from "./context.ts";

type Target = "query" | "param" | "header";

function fail(error: z.ZodError, target: string): never {
  throw toValidationError(error, target === "json" ? "body" : target);
}

export function createRouter() {
  const router = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) fail(result.error, result.target);
    },
  });
  // A route without a body gets one middleware that parses its query, path and headers
  // synchronously, in the order @hono/zod-openapi's three async validators would, with the same
  // values and errors; routes with a body (or their own hook) keep the library's validators.
  const openapi = router.openapi;
  router.openapi = ((route, handler, hook) => {
    const { middleware, hide, ...rest } = route;
    const request = route.request;
    if (hook || !request || request.body || request.cookies) return openapi(route, handler, hook);
    const parts: Array<[Target, z.ZodType]> = [];
    if (request.query) parts.push(["query", request.query as z.ZodType]);
    if (request.params) parts.push(["param", request.params as z.ZodType]);
    if (request.headers) parts.push(["header", request.headers as z.ZodType]);
    if (!hide) router.openAPIRegistry.registerPath(rest);
    const before = middleware ? (Array.isArray(middleware) ? middleware : [middleware]) : [];
    router.on(
      [route.method],
      [route.path.replaceAll(/\/{(.+?)}/g, "/:$1")],
      ...(before as MiddlewareHandler<AppEnv>[]),
      ...(parts.length > 0 ? [validateInputs(parts)] : []),
      handler as unknown as MiddlewareHandler<AppEnv>,
    );
    return router;
  }) as typeof router.openapi;
  return router;
}

function validateInputs(parts: Array<[Target, z.ZodType]>): MiddlewareHandler<AppEnv> {
  const readers = parts.map(([target, schema]) => [target, schema, reader(target, schema)] as const);
  return async (c, next) => {
    for (const [target, schema, read] of readers) {
      const value = read(c);
      let result: z.ZodSafeParseResult<unknown>;
      try {
        result = schema.safeParse(value);
      } catch (err) {
        // A schema with an async refinement cannot be parsed synchronously.
        if (!(err instanceof z.core.$ZodAsyncError)) throw err;
        result = await schema.safeParseAsync(value);
      }
      if (!result.success) fail(result.error, target);
      c.req.addValidatedData(target, result.data as never);
    }
    await next();
  };
}

/** The value hono's validator hands the schema for `target` (header names mapped to the schema's spelling). */
function reader(target: Target, schema: z.ZodType): (c: Context<AppEnv>) => unknown {
  if (target === "param") return (c) => c.req.param();
  if (target === "query")
    return (c) => Object.fromEntries(Object.entries(c.req.queries()).map(([k, v]) => [k, v.length === 1 ? v[0] : v]));
  const s = schema as unknown as { in?: { shape?: object }; shape?: object };
  const spelling = new Map(Object.keys(("in" in s ? s.in?.shape : s.shape) ?? {}).map((k) => [k.toLowerCase(), k]));
  const def = (schema as unknown as { _zod: { def: { type: string; catchall?: unknown } } })._zod.def;
  if (def.type === "object" && def.catchall === undefined) {
    // A plain object schema drops undeclared keys: reading only the declared headers parses the same.
    const declared = [...spelling];
    return (c) => {
      const out: Record<string, string> = {};
      for (const [lower, key] of declared) {
        const value = c.req.raw.headers.get(lower);
        if (value !== null) out[key] = value;
      }
      return out;
    };
  }
  return (c) => {
    const entries: [string, string][] = [];
    c.req.raw.headers.forEach((value, key) => {
      entries.push([spelling.get(key) ?? key, value]);
    });
    return Object.fromEntries(entries);
  };
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
