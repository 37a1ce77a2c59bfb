/**
 * `POST /v1/access-requests` (reader): a time-slice grant (201) or a denial (403), both carrying
 * the access-request id; `GET /v1/access-requests` (admin): past requests, newest first.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { createRouter, errorResponse } from "../router.ts";
import type { AccessServices } from "../../access/index.ts";
import { AccessRequestBodySchema } from "../../access/request-body.ts";
import { QueryInstantSchema, identifier } from "../../lib/schemas.ts";
import { GRANT_JWE_TYP } from "../../access/grants.ts";
import { cursorQuery, limitQuery, pageSchema } from "../paging.ts";

/** The request body schemas, for the SDK's types (src/client/types.ts, type-only). */
export type { AccessRequestBodySchema };

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const GrantKeySchema = z.object({
  slice: z.number().int(),
  kid: z.string().openapi({ example: "1:493712" }),
  privateJwk: z
    .object({
      kty: z.literal("EC"),
      crv: z.literal("P-256"),
      x: z.string(),
      y: z.string(),
      d: z.string(),
      kid: z.string().optional(),
    })
    .openapi({ description: "P-256 private JWK of the slice key" }),
});
export const GrantSeedSchema = z.object({
  depth: z.number().int().min(0).max(32),
  index: z.number().int(),
  seed: z.string().openapi({ description: "32-byte GGM node seed, base64url" }),
});

export const GrantSchema = z
  .object({
    id: z.string().openapi({ description: "access-request id" }),
    granted: z.literal(true),
    expiresAt: z.string().openapi({ description: "Advisory: discard the material after this (1 h)" }),
    keyVersion: z.number().int(),
    sliceSeconds: z.number().int(),
    slices: z.object({ from: z.number().int(), to: z.number().int() }),
    covered: z.object({ start: z.string(), end: z.string() }).openapi({
      description:
        "The exact data time the material opens (whole slices; ISO-8601, both ends inclusive). Policies judge this, not the requested range",
    }),
    keys: z
      .array(GrantKeySchema)
      .optional()
      .openapi({ description: "Per-slice private JWKs, when the range covers at most 64 slices (empty otherwise)" }),
    seeds: z.array(GrantSeedSchema).optional().openapi({ description: "Minimal GGM subtree cover of the slices" }),
    encrypted: z
      .string()
      .optional()
      .openapi({
        description: `Instead of keys and seeds when the requester registered a publicKeyJwk: compact JWE (ECDH-ES + A256GCM, typ ${GRANT_JWE_TYP}) of {"keys":[…],"seeds":[…]}; protected header also carries gid (this id), ver and slices`,
      }),
  })
  .openapi("Grant");

const DenialSchema = z
  .object({
    id: z.string(),
    granted: z.literal(false),
    error: z.object({ code: z.literal("ACCESS_DENIED"), message: z.string() }),
    policyId: z.string().nullable(),
    reason: z.string(),
    reasonCode: z.string().openapi({
      description: "Stable denial code (NOT_WHITELISTED, OUTSIDE_TIME_WINDOW, FUTURE_DATA, KEY_UNAVAILABLE, …)",
    }),
    requestId: z.string().optional(),
  })
  .openapi("Denial");

export const AccessRequestSchema = z
  .object({
    id: z.string(),
    requesterId: z.string(),
    resourceType: z.string(),
    resource: z.unknown(),
    startTime: z.string(),
    endTime: z.string(),
    purpose: z.string().nullable(),
    granted: z.boolean(),
    denialReason: z.string().nullable(),
    policyIds: z.array(z.string()),
    policyId: z.string().nullable(),
    keyCount: z.number().int().nullable(),
    createdAt: z.string(),
  })
  .openapi("AccessRequest");

const ListQuery = z.strictObject({
  requesterId: identifier("requesterId").optional(),
  granted: z.enum(["true", "false"], { error: "granted must be true or false" }).optional(),
  resourceType: z.enum(["token", "timeslice"], { error: 'resourceType must be "token" or "timeslice"' }).optional(),
  // A list window is half-open [from, to), like the audit log's (lib/schemas.ts).
  from: QueryInstantSchema.optional().describe("Requests made at or after this instant (ISO-8601 or epoch ms)"),
  to: QueryInstantSchema.optional().describe("Requests made before this instant, exclusive (ISO-8601 or epoch ms)"),
  limit: limitQuery(200, 50),
  cursor: cursorQuery,
});

const common = {
  400: errorResponse("invalid input"),
  401: errorResponse("missing or invalid API key"),
  429: errorResponse("too many failed authentications from this address"),
  503: errorResponse("the decision could not be made durable: no key material released"),
};

export function accessRequestRoutes(access: AccessServices) {
  return createRouter()
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/access-requests",
        tags: ["access"],
        summary: "Ask for time-slice keys; the requester is the API key's owner",
        request: { body: { required: true, content: { "application/json": { schema: AccessRequestBodySchema } } } },
        responses: {
          201: json(GrantSchema, "granted"),
          403: json(
            DenialSchema.or(z.object({ error: z.object({ code: z.string(), message: z.string() }) })),
            "denied by policy (Denial), or the key lacks the reader role (Error)",
          ),
          ...common,
        },
      }),
      async (c) => {
        const result = await access.accessRequests.request(c.get("principal"), c.req.valid("json"));
        c.header("Cache-Control", "no-store");
        if (result.status === 403) return c.json({ ...result.body, requestId: c.get("requestId") }, 403);
        return c.json(result.body, 201);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/access-requests",
        tags: ["access"],
        summary: "Past access requests, newest first (admin)",
        request: { query: ListQuery },
        responses: {
          200: json(pageSchema(AccessRequestSchema, "AccessRequestPage"), "a page"),
          403: errorResponse("the key lacks the admin role"),
          ...common,
        },
      }),
      async (c) => {
        const q = c.req.valid("query");
        const page = await access.accessRequests.list({
          limit: q.limit,
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
          ...(q.requesterId !== undefined ? { requesterId: q.requesterId } : {}),
          ...(q.granted !== undefined ? { granted: q.granted === "true" } : {}),
          ...(q.resourceType !== undefined ? { resourceType: q.resourceType } : {}),
          ...(q.from !== undefined ? { from: q.from } : {}),
          ...(q.to !== undefined ? { to: q.to } : {}),
        });
        return c.json(page, 200);
      },
    );
}
