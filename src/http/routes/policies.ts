/** Policy management and simulation (admin). Config is validated per type; `version` bumps on every change. */
import { createRoute, z } from "@hono/zod-openapi";
import { createRouter, errorResponse } from "../router.ts";
import type { AccessServices } from "../../access/index.ts";
import { PolicyInputSchema, PolicyPatchSchema, PolicyTypeSchema } from "../../policy/schemas.ts";
import { policyTypeCatalog } from "../../policy/registry.ts";
import { SimulateBodySchema } from "../../access/simulate.ts";

/** The request body schemas, for the SDK's types (src/client/types.ts, type-only). */
export type { PolicyInputSchema, PolicyPatchSchema, SimulateBodySchema };

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const PolicySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    type: PolicyTypeSchema,
    priority: z.number().int(),
    enabled: z.boolean(),
    scope: z.unknown(),
    config: z.unknown().openapi({ description: "Per type; instants are stored as epoch milliseconds" }),
    description: z.string().nullable(),
    version: z.number().int().openapi({ description: "Bumped on every change" }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Policy");

const PolicyTypeInfoSchema = z
  .object({
    type: PolicyTypeSchema,
    summary: z.string(),
    example: z.unknown().openapi({ description: "A valid config for this type" }),
  })
  .openapi("PolicyType");

const EvaluatedSchema = z.object({
  id: z.string(),
  version: z.number().int(),
  outcome: z.enum(["admitted", "not-admitted", "passed", "denied", "skipped"]),
  reason: z.string(),
  code: z.string().optional(),
});

export const SimulationSchema = z
  .object({
    granted: z.boolean(),
    policyId: z.string().nullable(),
    policyVersion: z.number().int().nullable(),
    reason: z.string(),
    reasonCode: z.string(),
    requester: z.object({ requesterId: z.string(), department: z.string().nullable(), exists: z.boolean() }),
    evaluated: z.array(EvaluatedSchema),
    slices: z
      .object({
        keyVersion: z.number(),
        sliceSeconds: z.number(),
        from: z.number(),
        to: z.number(),
        keyCount: z.number(),
        seedCount: z.number(),
        covered: z.object({ start: z.string(), end: z.string() }).openapi({
          description: "The data time a grant would open (whole slices, both ends inclusive); what the policies judged",
        }),
      })
      .optional(),
  })
  .openapi("Simulation");

const IdParams = z.object({
  id: z.uuid({ error: "id must be a policy id (uuid)" }).openapi({ param: { name: "id", in: "path" } }),
});

const common = {
  400: errorResponse("invalid input, e.g. a config that does not fit the policy type"),
  401: errorResponse("missing or invalid API key"),
  403: errorResponse("the key lacks the admin role"),
  429: errorResponse("too many failed authentications from this address"),
  503: errorResponse("database or audit log unavailable"),
};

export function policyRoutes(access: AccessServices) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/policies",
        tags: ["policies"],
        summary: "List policies in evaluation order",
        responses: { 200: json(z.object({ items: z.array(PolicySchema) }), "all policies"), ...common },
      }),
      async (c) => c.json({ items: (await access.policies.list()) as z.infer<typeof PolicySchema>[] }, 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/policies/types",
        tags: ["policies"],
        summary: "The policy types this server knows, each with a valid example config",
        responses: {
          200: json(z.object({ items: z.array(PolicyTypeInfoSchema) }), "every registered type"),
          ...common,
        },
      }),
      (c) => c.json({ items: policyTypeCatalog() }, 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/policies",
        tags: ["policies"],
        summary: "Create a policy (live at once unless enabled: false)",
        request: { body: { required: true, content: { "application/json": { schema: PolicyInputSchema } } } },
        responses: {
          201: json(PolicySchema, "created"),
          409: errorResponse("a policy with this name exists"),
          ...common,
        },
      }),
      async (c) =>
        c.json(
          (await access.policies.create(c.req.valid("json"), c.get("principal").requesterId)) as z.infer<
            typeof PolicySchema
          >,
          201,
        ),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/policies/simulate",
        tags: ["policies"],
        summary: "What would this request get, and why (nothing granted; audited as ACCESS_SIMULATED)",
        request: { body: { required: true, content: { "application/json": { schema: SimulateBodySchema } } } },
        responses: { 200: json(SimulationSchema, "the decision that would be made"), ...common },
      }),
      async (c) => c.json(await access.simulator.simulate(c.req.valid("json"), c.get("principal").requesterId), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/policies/{id}",
        tags: ["policies"],
        summary: "Get a policy",
        request: { params: IdParams },
        responses: { 200: json(PolicySchema, "the policy"), 404: errorResponse("no such policy"), ...common },
      }),
      async (c) => c.json((await access.policies.get(c.req.valid("param").id)) as z.infer<typeof PolicySchema>, 200),
    )
    .openapi(
      createRoute({
        method: "patch",
        path: "/v1/policies/{id}",
        tags: ["policies"],
        summary: "Change a policy (fields replace whole; the result is validated as a whole)",
        request: {
          params: IdParams,
          body: { required: true, content: { "application/json": { schema: PolicyPatchSchema } } },
        },
        responses: {
          200: json(PolicySchema, "updated"),
          404: errorResponse("no such policy"),
          409: errorResponse("name taken, or changed concurrently"),
          ...common,
        },
      }),
      async (c) =>
        c.json(
          (await access.policies.update(
            c.req.valid("param").id,
            c.req.valid("json"),
            c.get("principal").requesterId,
          )) as z.infer<typeof PolicySchema>,
          200,
        ),
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/v1/policies/{id}",
        tags: ["policies"],
        summary: "Delete a policy",
        request: { params: IdParams },
        responses: { 204: { description: "deleted" }, 404: errorResponse("no such policy"), ...common },
      }),
      async (c) => {
        await access.policies.remove(c.req.valid("param").id, c.get("principal").requesterId);
        return c.body(null, 204);
      },
    );
}
