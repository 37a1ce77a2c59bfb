/**
 * Webhook endpoints (admin, by path in src/http/access-rules.ts): register (the signing secret is
 * shown once), list with delivery counts, a webhook's deliveries, delete. Events, signature and
 * replay window are described in the README ("Token lifecycle").
 */
import { createRoute, z } from "@hono/zod-openapi";
import { WEBHOOK_EVENT_TYPES } from "../../webhooks/events.ts";
import type { WebhookService } from "../../webhooks/service.ts";
import { createRouter, errorResponse } from "../router.ts";
import { cursorQuery, limitQuery, pageSchema } from "../paging.ts";

const WebhookUrl = z
  .string()
  .max(2048)
  .refine(
    (v) => {
      try {
        const u = new URL(v);
        return (u.protocol === "https:" || u.protocol === "http:") && !u.username && !u.password && !u.hash;
      } catch {
        return false;
      }
    },
    { error: "url must be an http(s) URL without credentials or fragment" },
  );

export const CreateWebhookSchema = z
  .strictObject({
    url: WebhookUrl,
    events: z
      .array(z.enum(WEBHOOK_EVENT_TYPES, { error: `events must be among ${WEBHOOK_EVENT_TYPES.join(", ")}` }))
      .min(1, { error: "events must name at least one event type" })
      .max(WEBHOOK_EVENT_TYPES.length * 2),
    description: z.string().trim().min(1).max(500).optional(),
  })
  .openapi("WebhookCreate");

export const WebhookSchema = z
  .object({
    id: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    description: z.string().nullable(),
    enabled: z.boolean(),
    createdAt: z.string(),
    createdBy: z.string(),
    deliveries: z.object({
      pending: z.number().int(),
      delivered: z.number().int(),
      failed: z.number().int(),
      lastDeliveredAt: z.string().nullable(),
      lastError: z.string().nullable(),
    }),
  })
  .openapi("Webhook");

export const WebhookCreatedSchema = WebhookSchema.extend({
  secret: z.string().openapi({ description: "whsec_…; shown once" }),
}).openapi("WebhookCreated");

export const DeliverySchema = z
  .object({
    id: z.string(),
    eventId: z.string(),
    eventType: z.string(),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.number().int(),
    nextAttemptAt: z.string().nullable(),
    lastAttemptAt: z.string().nullable(),
    lastStatus: z.number().int().nullable(),
    lastError: z.string().nullable(),
    deliveredAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi("WebhookDelivery");

const IdParams = z.strictObject({ id: z.uuid({ error: "id must be a UUID" }) });
const notFound = errorResponse("no such webhook");

export function webhookRoutes(webhooks: WebhookService) {
  return createRouter()
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/webhooks",
        tags: ["webhooks"],
        summary: "Register a webhook endpoint; the signing secret is in this response only",
        request: { body: { required: true, content: { "application/json": { schema: CreateWebhookSchema } } } },
        responses: {
          201: {
            description: "registered",
            content: {
              "application/json": {
                schema: WebhookCreatedSchema,
              },
            },
          },
          400: errorResponse("bad url or event types"),
        },
      }),
      async (c) => {
        c.header("Cache-Control", "no-store");
        return c.json(await webhooks.create(c.get("principal").requesterId, c.req.valid("json")), 201);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/webhooks",
        tags: ["webhooks"],
        summary: "List webhook endpoints with their delivery counts (never the secret)",
        request: { query: z.strictObject({ limit: limitQuery(200, 50), cursor: cursorQuery }) },
        responses: {
          200: {
            description: "a page of webhooks, oldest first",
            content: { "application/json": { schema: pageSchema(WebhookSchema, "WebhookList") } },
          },
          400: errorResponse("bad limit or cursor"),
        },
      }),
      async (c) => c.json(await webhooks.list(c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/webhooks/{id}/deliveries",
        tags: ["webhooks"],
        summary: "A webhook's deliveries, newest first: status, attempts, next attempt, last error",
        request: {
          params: IdParams,
          query: z.strictObject({
            status: z.enum(["pending", "delivered", "failed"]).optional(),
            limit: limitQuery(500, 100),
            cursor: cursorQuery,
          }),
        },
        responses: {
          200: {
            description: "deliveries",
            content: {
              "application/json": { schema: pageSchema(DeliverySchema, "WebhookDeliveryList") },
            },
          },
          400: errorResponse("bad id or query"),
          404: notFound,
        },
      }),
      async (c) => {
        const page = await webhooks.deliveries(c.req.valid("param").id, c.req.valid("query"));
        return c.json(page as { items: z.infer<typeof DeliverySchema>[]; nextCursor: string | null }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/v1/webhooks/{id}",
        tags: ["webhooks"],
        summary: "Delete a webhook endpoint and its pending deliveries (audited)",
        request: { params: IdParams },
        responses: { 204: { description: "deleted" }, 400: errorResponse("bad id"), 404: notFound },
      }),
      async (c) => {
        await webhooks.delete(c.get("principal").requesterId, c.req.valid("param").id);
        return c.body(null, 204);
      },
    );
}
