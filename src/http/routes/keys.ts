/**
 * Key routes. Public: the JWKS and signed slice public keys (cacheable, no auth). Management:
 * `GET /v1/keys` and `POST /v1/keys/rotate` — mounted without auth here; app.ts puts the admin
 * guard in front of `/v1/keys*`.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ManagedKeyService } from "../../keys/service.ts";
import { ScheduleInputSchema, scheduleView, type ScheduleStore } from "../../keys/schedule.ts";
import { STATEMENT_CACHE_MAX_AGE_S, UncachedLookupLimiter } from "../../keys/slice-statements.ts";
import { createRouter, errorResponse } from "../router.ts";
import { clientAddressOf } from "../middleware/request-context.ts";

const MAX_SLICE = 0xffffffff;

export const JwkSchema = z
  .object({
    kty: z.literal("EC"),
    crv: z.literal("P-256"),
    x: z.string(),
    y: z.string(),
    kid: z.string().optional(),
    alg: z.string().optional(),
    use: z.string().optional(),
  })
  .openapi("EcPublicJwk");

export const JwksSchema = z.object({ keys: z.array(JwkSchema) }).openapi("Jwks");

const SliceParams = z.object({
  slice: z
    .string()
    .regex(/^(current|0|[1-9][0-9]{0,9})$/, "must be `current` or a non-negative integer in canonical decimal")
    .transform((v) => (v === "current" ? ("current" as const) : Number(v)))
    .refine((n) => n === "current" || n <= MAX_SLICE, `must be at most ${MAX_SLICE}`)
    .openapi({
      param: { name: "slice", in: "path" },
      example: "current",
      type: "string",
      description:
        "slice index, or `current` for the slice of now; only slices near now are signed (24 h back to 1 h ahead)",
    }),
});

const SliceQuery = z
  .object({
    version: z
      .string()
      .regex(/^[1-9][0-9]{0,8}$/, "must be a positive integer")
      .transform(Number)
      .optional()
      .openapi({
        param: { name: "version", in: "query" },
        description: "master key version (default: the active one)",
        type: "string",
      }),
  })
  .strict();

export const SignedSliceKeySchema = z
  .object({
    version: z.number().int(),
    slice: z.number().int(),
    kid: z.string(),
    sliceSeconds: z.number().int(),
    status: z
      .enum(["active", "decrypt-only"])
      .openapi({ description: "the version's status when signed; encrypt only to active" }),
    from: z.string().openapi({ description: "slice start (inclusive), ISO 8601" }),
    to: z.string().openapi({ description: "slice end (exclusive), ISO 8601" }),
    issuedAt: z.string().openapi({ description: "when the statement was signed (its iat), ISO 8601" }),
    expiresAt: z.string().openapi({ description: "when the statement stops being valid (its exp), ISO 8601" }),
    publicJwk: JwkSchema,
    signature: z.string().openapi({
      description:
        "compact JWS (ES256, kid = master key version, typ chronokms-slice-key+json) over the slice key statement; verify with the JWKS key of that kid",
    }),
  })
  .openapi("SignedSliceKey");

export const EndorsementsSchema = z
  .object({
    endorsements: z.array(
      z.object({
        endorser: z.number().int().openapi({ description: "the older master key version that signed" }),
        version: z.number().int().openapi({ description: "the newer master key version it vouches for" }),
        signature: z.string().openapi({
          description:
            "compact JWS (ES256, kid = endorser, typ chronokms-key-endorsement+json) over { endorser, version, jwk, createdAt, sliceSeconds }; verify with a pinned key of the endorser",
        }),
      }),
    ),
  })
  .openapi("KeyEndorsements");

export const KeyVersionSchema = z
  .object({
    version: z.number().int(),
    status: z.enum(["active", "decrypt-only", "retired"]),
    sliceSeconds: z.number().int(),
    kekId: z.string(),
    createdAt: z.string(),
    rotatedAt: z.string().nullable(),
    retiredAt: z.string().nullable(),
    records: z.number().int().openapi({ description: "records still sealed under this version" }),
    recordsByStore: z.record(z.string(), z.number().int()),
  })
  .openapi("KeyVersion");

export const RotateResultSchema = z
  .object({
    version: z.number().int(),
    previous: z.number().int().nullable(),
    pending: z.number().int().openapi({
      description:
        "records still on older versions; run `bun run keys:rotate --no-rotate` (or wait for the background re-encryption) to move them",
    }),
  })
  .openapi("RotateResult");

export const ScheduleSchema = z
  .object({
    rotateEverySeconds: z.number().int().nullable().openapi({ description: "rotation period (null: never set)" }),
    retireAfterSeconds: z.number().int().nullable().openapi({
      description: "retire a decrypt-only version this long after its rotation, once no record needs it; null: never",
    }),
    enabled: z.boolean(),
    nextDueAt: z
      .string()
      .nullable()
      .openapi({ description: "next scheduled rotation, ISO 8601 (null while disabled)" }),
    lastRotatedAt: z.string().nullable(),
    updatedAt: z.string().nullable(),
    updatedBy: z.string().nullable(),
  })
  .openapi("KeySchedule");

export const ScheduleBodySchema = ScheduleInputSchema;

export const KeysOverviewSchema = z.object({ versions: z.array(KeyVersionSchema), schedule: ScheduleSchema });

/** Public, unauthenticated key material. */
export function publicKeyRoutes(keys: ManagedKeyService, opts: { limiter?: UncachedLookupLimiter } = {}) {
  const limiter = opts.limiter ?? new UncachedLookupLimiter(Date.now);
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/.well-known/jwks.json",
        tags: ["keys"],
        summary: "Master public keys that are not retired (kid = version)",
        responses: {
          200: { description: "JWKS", content: { "application/json": { schema: JwksSchema } } },
          500: errorResponse("internal error"),
        },
      }),
      async (c) => {
        c.header("Cache-Control", "public, max-age=60");
        return c.json({ keys: await keys.jwks() }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/keys/endorsements",
        tags: ["keys"],
        operationId: "listKeyEndorsements",
        summary: "Signatures by each master key version over every later one, so a pinned key can vouch for rotations",
        security: [],
        responses: {
          200: {
            description: "endorsements (every non-retired version endorses each later non-retired one)",
            content: { "application/json": { schema: EndorsementsSchema } },
          },
        },
      }),
      async (c) => {
        c.header("Cache-Control", "public, max-age=60");
        return c.json({ endorsements: await keys.endorsements() }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/time-slices/{slice}/public-key",
        tags: ["keys"],
        summary: "A time slice's public key, signed by its master key",
        request: { params: SliceParams, query: SliceQuery },
        responses: {
          200: {
            description: "signed slice public key",
            content: { "application/json": { schema: SignedSliceKeySchema } },
          },
          400: errorResponse("bad slice or version, or a slice outside the signing window"),
          404: errorResponse("no such master key version"),
          409: errorResponse("master key version retired"),
          429: errorResponse(
            "too many lookups that had to be signed from this address (Retry-After says when to retry)",
          ),
        },
      }),
      async (c) => {
        const { slice } = c.req.valid("param");
        const { version } = c.req.valid("query");
        const body = await keys.signedSliceKey(slice, version, { charge: () => limiter.take(clientAddressOf(c)) });
        c.header("Cache-Control", `public, max-age=${STATEMENT_CACHE_MAX_AGE_S}`);
        return c.json(body, 200);
      },
    );
}

/** Key management; the admin guard is mounted in front of these by app.ts. */
export function keyManagementRoutes(
  keys: ManagedKeyService,
  schedule: ScheduleStore,
  opts: { onRotated?: (version: number) => void } = {},
) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/keys",
        tags: ["keys"],
        summary:
          "Master key versions, their status and how many records each still protects, and the rotation schedule",
        responses: {
          200: {
            description: "versions",
            content: {
              "application/json": {
                schema: KeysOverviewSchema,
              },
            },
          },
          401: errorResponse("unauthenticated"),
          403: errorResponse("not an admin"),
        },
      }),
      async (c) => {
        const [versions, s] = await Promise.all([keys.versions(), schedule.get()]);
        return c.json({ versions, schedule: scheduleView(s) }, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/keys/schedule",
        tags: ["keys"],
        summary: "The rotation schedule and when the next scheduled rotation is due",
        responses: {
          200: {
            description: "schedule (enabled false and nulls when never set)",
            content: { "application/json": { schema: ScheduleSchema } },
          },
          401: errorResponse("unauthenticated"),
          403: errorResponse("not an admin"),
        },
      }),
      async (c) => c.json(scheduleView(await schedule.get()), 200),
    )
    .openapi(
      createRoute({
        method: "put",
        path: "/v1/keys/schedule",
        tags: ["keys"],
        summary:
          "Set the rotation schedule (periods of at least 60 s); the service rotates, re-encrypts and retires on it",
        request: { body: { required: true, content: { "application/json": { schema: ScheduleBodySchema } } } },
        responses: {
          200: { description: "schedule set", content: { "application/json": { schema: ScheduleSchema } } },
          400: errorResponse("invalid schedule"),
          401: errorResponse("unauthenticated"),
          403: errorResponse("not an admin"),
        },
      }),
      async (c) => {
        const input = c.req.valid("json");
        const s = await schedule.put(input, c.get("principal")?.requesterId ?? "http:unauthenticated");
        return c.json(scheduleView(s), 200);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/v1/keys/rotate",
        tags: ["keys"],
        summary: "Make a new active master key version; the old one becomes decrypt-only",
        responses: {
          201: { description: "rotated", content: { "application/json": { schema: RotateResultSchema } } },
          401: errorResponse("unauthenticated"),
          403: errorResponse("not an admin"),
        },
      }),
      async (c) => {
        // The principal is set once the admin guard is mounted in front of this route.
        const r = await keys.rotate({ actor: c.get("principal")?.requesterId ?? "http:unauthenticated" });
        let pending = 0;
        for (const v of await keys.versions()) if (v.version !== r.version) pending += v.records;
        opts.onRotated?.(r.version);
        return c.json({ ...r, pending }, 201);
      },
    );
}
