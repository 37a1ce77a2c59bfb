/**
 * Builds the OpenAPI 3.1 document from the routers' zod definitions, adding what is common to
 * every operation: the bearer security scheme on authenticated routes and the error responses
 * that middleware can produce (400/401/403/413/429/500/503) in the single error shape.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./context.ts";
import { ErrorSchema } from "./router.ts";

/** Paths anyone may call without an API key. */
export const publicPathPatterns: RegExp[] = [
  /^\/healthz$/,
  /^\/readyz$/,
  /^\/\.well-known\/jwks\.json$/,
  /^\/v1\/time-slices\/[^/]+\/public-key$/,
  /^\/openapi\.json$/,
  /^\/docs(\/.*)?$/,
  /^\/console(\/.*)?$/, // the console's static page and assets; its data comes from /v1 with the admin's key
];

export function isPublicPath(path: string): boolean {
  return publicPathPatterns.some((p) => p.test(path));
}

const errorRef = { content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } };
const commonErrors: Record<string, string> = {
  "400": "invalid input (malformed JSON, wrong types, unknown fields, bad ids or ranges)",
  "413": "request body too large",
  "500": "internal error (generic; details are logged, never returned)",
  "503": "a dependency (database, audit log) is unavailable; nothing was released",
};
const authErrors: Record<string, string> = {
  "401": "missing, invalid, disabled or expired API key",
  "403": "the API key's role does not allow this operation",
  "429": "too many failed authentications from this address",
};

export function buildOpenApiDocument(app: OpenAPIHono<AppEnv>, version: string) {
  app.openAPIRegistry.register("Error", ErrorSchema);
  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "An API key `ckms_<keyId>_<secret>` sent as `Authorization: Bearer <key>`.",
  });
  const doc = app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "chronokms",
      version,
      description: "Key management with time-slice keys, policy-checked access and a tamper-evident audit log.",
    },
    servers: [{ url: "/" }],
  });
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const concrete = path.replace(/\{[^}]+\}/g, "x");
    const authenticated = !isPublicPath(concrete);
    for (const method of ["get", "put", "post", "patch", "delete"] as const) {
      const op = (item as Record<string, { responses?: Record<string, unknown>; security?: unknown }>)[method];
      if (!op) continue;
      op.responses ??= {};
      const extra = authenticated ? { ...commonErrors, ...authErrors } : commonErrors;
      for (const [status, description] of Object.entries(extra)) {
        if (method === "get" && status === "413") continue;
        op.responses[status] ??= { description, ...errorRef };
      }
      if (authenticated) op.security ??= [{ apiKey: [] }];
    }
  }
  return doc;
}
