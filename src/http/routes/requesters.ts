/** Requester and API-key management (admin). `{id}` is the requester's internal uuid. */
import { createRoute, z } from "@hono/zod-openapi";
import { createRouter, errorResponse } from "../router.ts";
import type { AccessServices } from "../../access/index.ts";
import { RequesterCreateSchema, RequesterPatchSchema } from "../../access/requesters.ts";
import { ROLES } from "../../access/principal.ts";
import { InstantSchema, identifier, text } from "../../lib/schemas.ts";
import { KEY_ID_PATTERN } from "../../access/api-key-format.ts";
import { safeString } from "../../lib/text.ts";
import { cursorQuery, limitQuery, pageSchema } from "../paging.ts";

/** The request body schemas, for the SDK's types (src/client/types.ts, type-only). */
export type { RequesterCreateSchema, RequesterPatchSchema };

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const ApiKeyViewSchema = z
  .object({
    keyId: z.string(),
    name: z.string().nullable(),
    roles: z.array(z.enum(ROLES)),
    enabled: z.boolean(),
    expiresAt: z.string().nullable(),
    lastUsedAt: z.string().nullable().openapi({ description: "Coalesced: written at most every few seconds" }),
    createdAt: z.string(),
  })
  .openapi("ApiKey");

export const RequesterSchema = z
  .object({
    id: z.string().openapi({ description: "Internal id (uuid); used in paths" }),
    requesterId: z.string(),
    name: z.string(),
    department: z.string().nullable(),
    email: z.string().nullable(),
    enabled: z.boolean(),
    metadata: z.unknown(),
    publicKeyJwk: z.unknown(),
    createdAt: z.string(),
    updatedAt: z.string(),
    apiKeys: z.array(ApiKeyViewSchema).optional(),
  })
  .openapi("Requester");

const IdParams = z.object({
  id: z.uuid({ error: "id must be a requester id (uuid)" }).openapi({ param: { name: "id", in: "path" } }),
});
const KeyParams = IdParams.extend({
  keyId: safeString("keyId")
    .regex(KEY_ID_PATTERN, { error: "keyId must be 16 characters from a–z 2–7" })
    .openapi({ param: { name: "keyId", in: "path" } }),
});

const ListQuery = z.strictObject({
  limit: limitQuery(200, 50),
  cursor: cursorQuery,
  requesterId: identifier("requesterId").optional(),
  enabled: z.enum(["true", "false"], { error: "enabled must be true or false" }).optional(),
});

export const ApiKeyCreateSchema = z.strictObject({
  roles: z
    .array(z.enum(ROLES, { error: `roles must be among ${ROLES.map((r) => `"${r}"`).join(", ")}` }), {
      error: "roles must be an array",
    })
    .min(1, { error: "roles must name at least one role" })
    .max(ROLES.length),
  name: text("name", 200).optional(),
  expiresAt: InstantSchema.optional().describe("When the key stops working (must be in the future)"),
});

export const ApiKeyCreatedSchema = z
  .object({
    keyId: z.string(),
    apiKey: z.string().openapi({ description: "The full key: shown this once, store it now" }),
    key: ApiKeyViewSchema,
  })
  .openapi("ApiKeyCreated");

const common = {
  400: errorResponse("invalid input"),
  401: errorResponse("missing or invalid API key"),
  403: errorResponse("the key lacks the admin role"),
  429: errorResponse("too many failed authentications from this address"),
  503: errorResponse("database or audit log unavailable"),
};

export function requesterRoutes(access: AccessServices) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/requesters",
        tags: ["requesters"],
        summary: "List requesters (by creation; cursor pagination)",
        request: { query: ListQuery },
        responses: {
          200: json(pageSchema(RequesterSchema, "RequesterPage"), "a page of requesters"),
          ...common,
        },
      }),
      async (c) => {
        const q = c.req.valid("query");
        const page = await access.requesters.list({
          limit: q.limit,
          ...(q.cursor ? { cursor: q.cursor } : {}),
          ...(q.requesterId ? { requesterId: q.requesterId } : {}),
          ...(q.enabled ? { enabled: q.enabled === "true" } : {}),
        });
        return c.json(page, 200);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/requesters",
        tags: ["requesters"],
        summary: "Create a requester",
        request: { body: { required: true, content: { "application/json": { schema: RequesterCreateSchema } } } },
        responses: {
          201: json(RequesterSchema, "created"),
          409: errorResponse("requesterId already taken"),
          ...common,
        },
      }),
      async (c) => c.json(await access.requesters.create(c.req.valid("json"), c.get("principal").requesterId), 201),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/requesters/{id}",
        tags: ["requesters"],
        summary: "Get a requester with its API keys (never their secrets)",
        request: { params: IdParams },
        responses: { 200: json(RequesterSchema, "the requester"), 404: errorResponse("no such requester"), ...common },
      }),
      async (c) => c.json(await access.requesters.get(c.req.valid("param").id), 200),
    )
    .openapi(
      createRoute({
        method: "patch",
        path: "/v1/requesters/{id}",
        tags: ["requesters"],
        summary: "Update a requester (requesterId is immutable)",
        request: {
          params: IdParams,
          body: { required: true, content: { "application/json": { schema: RequesterPatchSchema } } },
        },
        responses: { 200: json(RequesterSchema, "updated"), 404: errorResponse("no such requester"), ...common },
      }),
      async (c) =>
        c.json(
          await access.requesters.update(c.req.valid("param").id, c.req.valid("json"), c.get("principal").requesterId),
          200,
        ),
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/v1/requesters/{id}",
        tags: ["requesters"],
        summary: "Delete a requester and its API keys (its access requests and audit rows stay)",
        request: { params: IdParams },
        responses: { 204: { description: "deleted" }, 404: errorResponse("no such requester"), ...common },
      }),
      async (c) => {
        await access.requesters.remove(c.req.valid("param").id, c.get("principal").requesterId);
        return c.body(null, 204);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/requesters/{id}/api-keys",
        tags: ["requesters"],
        summary: "Issue an API key (the secret is shown once)",
        request: {
          params: IdParams,
          body: { required: true, content: { "application/json": { schema: ApiKeyCreateSchema } } },
        },
        responses: { 201: json(ApiKeyCreatedSchema, "issued"), 404: errorResponse("no such requester"), ...common },
      }),
      async (c) => {
        const body = c.req.valid("json");
        const created = await access.apiKeys.create(
          c.req.valid("param").id,
          { roles: body.roles, name: body.name ?? null, expiresAt: body.expiresAt ?? null },
          c.get("principal").requesterId,
        );
        c.header("Cache-Control", "no-store");
        return c.json(created, 201);
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/v1/requesters/{id}/api-keys/{keyId}",
        tags: ["requesters"],
        summary: "Revoke an API key (it stays listed, disabled)",
        request: { params: KeyParams },
        responses: { 204: { description: "revoked" }, 404: errorResponse("no such key for this requester"), ...common },
      }),
      async (c) => {
        const { id, keyId } = c.req.valid("param");
        await access.apiKeys.revoke(id, keyId, c.get("principal").requesterId);
        return c.body(null, 204);
      },
    );
}
