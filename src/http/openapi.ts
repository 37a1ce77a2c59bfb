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
  /^\/v1\/keys\/endorsements$/,
  /^\/openapi\.json$/,
  /^\/docs(\/.*)?$/,
  /^\/console(\/.*)?$/, // the console's static page and assets; its data comes from /v1 with the admin's key
];

// One alternation, asked on every request by the access rules.
const publicPath = new RegExp(publicPathPatterns.map((p) => `(?:${p.source})`).join("|"));

export function isPublicPath(path: string): boolean {
  return publicPath.test(path);
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

/**
 * operationId of each operation ("METHOD /path" as documented). A route may also set its own
 * `operationId` in createRoute; an operation in neither gets one derived from method and path
 * (`getV1KeysSchedule`), so a new route never breaks the document — but name it here.
 */
export const OPERATION_IDS: Readonly<Record<string, string>> = {
  "GET /healthz": "getHealth",
  "GET /readyz": "getReadiness",
  "GET /.well-known/jwks.json": "getJwks",
  "GET /v1/time-slices/{slice}/public-key": "getSlicePublicKey",
  "GET /v1/keys/endorsements": "listKeyEndorsements",
  "GET /v1/keys": "listKeyVersions",
  "POST /v1/keys/rotate": "rotateMasterKey",
  "GET /v1/audit-logs": "listAuditLogs",
  "GET /v1/audit-logs/stats": "getAuditStats",
  "GET /v1/audit-logs/verify": "verifyAuditLog",
  "GET /v1/audit-logs/head": "getAuditHead",
  "GET /v1/requesters": "listRequesters",
  "POST /v1/requesters": "createRequester",
  "GET /v1/requesters/{id}": "getRequester",
  "PATCH /v1/requesters/{id}": "updateRequester",
  "DELETE /v1/requesters/{id}": "deleteRequester",
  "POST /v1/requesters/{id}/api-keys": "createApiKey",
  "DELETE /v1/requesters/{id}/api-keys/{keyId}": "revokeApiKey",
  "GET /v1/policies": "listPolicies",
  "POST /v1/policies": "createPolicy",
  "POST /v1/policies/simulate": "simulateAccess",
  "GET /v1/policies/types": "listPolicyTypes",
  "GET /v1/policies/{id}": "getPolicy",
  "PATCH /v1/policies/{id}": "updatePolicy",
  "DELETE /v1/policies/{id}": "deletePolicy",
  "POST /v1/access-requests": "requestAccess",
  "GET /v1/access-requests": "listAccessRequests",
  "PUT /v1/tokens/{integration}/{userId}": "putToken",
  "GET /v1/tokens/{integration}/{userId}": "getToken",
  "DELETE /v1/tokens/{integration}/{userId}": "deleteToken",
  "GET /v1/tokens/{integration}/{userId}/status": "getTokenStatus",
  "GET /v1/tokens/{integration}/{userId}/export": "exportToken",
  "DELETE /v1/users/{userId}/tokens": "deleteUserTokens",
  "GET /v1/tokens": "listTokens",
  "GET /v1/keys/schedule": "getRotationSchedule",
  "PUT /v1/keys/schedule": "putRotationSchedule",
  "GET /metrics": "getMetrics",
  "POST /v1/webhooks": "createWebhook",
  "GET /v1/webhooks": "listWebhooks",
  "GET /v1/webhooks/{id}/deliveries": "listWebhookDeliveries",
  "DELETE /v1/webhooks/{id}": "deleteWebhook",
  "GET /v1/proxy/{integration}/{userId}/{path}": "proxyGet",
  "POST /v1/proxy/{integration}/{userId}/{path}": "proxyPost",
  "PUT /v1/proxy/{integration}/{userId}/{path}": "proxyPut",
  "PATCH /v1/proxy/{integration}/{userId}/{path}": "proxyPatch",
  "DELETE /v1/proxy/{integration}/{userId}/{path}": "proxyDelete",
};

/** `get` + `/v1/keys/{id}/x-y` → `getV1KeysIdXY`. */
function derivedOperationId(method: string, path: string): string {
  const words = path.split(/[^A-Za-z0-9]+/).filter(Boolean);
  return method + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join("");
}

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
  // Not open source: a LicenseRef- is SPDX's way to name a license without an SPDX identifier
  // (OpenAPI 3.1 `license.identifier`; the generator's types predate that field).
  (doc.info as { license?: unknown }).license = { name: "Proprietary", identifier: "LicenseRef-chronokms-proprietary" };
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const concrete = path.replace(/\{[^}]+\}/g, "x");
    const authenticated = !isPublicPath(concrete);
    for (const method of ["get", "put", "post", "patch", "delete"] as const) {
      const op = (
        item as Record<string, { responses?: Record<string, unknown>; security?: unknown; operationId?: string }>
      )[method];
      if (!op) continue;
      op.operationId ??= OPERATION_IDS[`${method.toUpperCase()} ${path}`] ?? derivedOperationId(method, path);
      op.responses ??= {};
      const extra = authenticated ? { ...commonErrors, ...authErrors } : commonErrors;
      for (const [status, description] of Object.entries(extra)) {
        if (method === "get" && status === "413") continue;
        op.responses[status] ??= { description, ...errorRef };
      }
      // Public operations say so explicitly (an empty requirement), so no reader guesses.
      op.security ??= authenticated ? [{ apiKey: [] }] : [];
    }
  }
  return doc;
}
