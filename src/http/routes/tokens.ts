/**
 * OAuth token routes (SPEC §7–8). Roles are enforced by path before any router runs
 * (src/http/access-rules.ts): writer → PUT and both DELETEs; reader → GET token, status and the
 * metadata list; exporter → export. Reads, status, list and export are also decisions of the
 * policy engine, inside the vault.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  DeleteTokenQuerySchema,
  ListTokensQuerySchema,
  PurposeHeadersSchema,
  ReadTokenQuerySchema,
  StatusQuerySchema,
  StoreTokenBodySchema,
  TokenParamsSchema,
  UserParamsSchema,
} from "../../tokens/schemas.ts";
import type { TokenVault } from "../../tokens/vault.ts";
import { createRouter, errorResponse } from "../router.ts";
import { decodeIdCursor, encodeIdCursor } from "../../lib/keyset-cursor.ts";
import { cursorQuery, pageSchema } from "../paging.ts";
import { clientAddressOf } from "../middleware/request-context.ts";

/** The request body schema, for the SDK's types (src/client/types.ts, type-only). */
export type { StoreTokenBodySchema };

const MAX_USER_AGENT = 512;

export const TokenMetadataSchema = z
  .object({
    integration: z.string(),
    userId: z.string(),
    expiresAt: z.string().nullable(),
    scope: z.string().nullable(),
    tokenType: z.string().nullable(),
    hasRefreshToken: z.boolean(),
    refreshStatus: z
      .enum(["ok", "degraded", "needs-reauth"])
      .openapi({ description: "the refresh state machine (README, Token lifecycle)" }),
    refreshReason: z.string().nullable().openapi({
      description:
        "typed reason of the last refresh failure: provider_5xx, rate_limited, timeout, network, malformed_response, misconfigured, invalid_grant, revoked, no_refresh_token",
    }),
    nextRefreshAt: z
      .string()
      .nullable()
      .openapi({ description: "while degraded: no refresh attempt before this instant" }),
    status: z.enum(["valid", "expired", "needs-reauth"]).openapi({
      description:
        "valid: usable now; expired: past expiry but a read will refresh it; needs-reauth: the user must authorise again",
    }),
    keyVersion: z.number().int(),
    issuedAt: z.string(),
    lastUsed: z.string().nullable().openapi({
      description: "time of the last read, kept to within a minute (written in batches every few seconds)",
    }),
    createdAt: z.string(),
    updatedAt: z.string(),
    ipAddress: z.string().nullable(),
    userAgent: z.string().nullable(),
  })
  .openapi("TokenMetadata");

export const TokenReadSchema = z
  .object({
    integration: z.string(),
    userId: z.string(),
    accessToken: z.string(),
    expiresAt: z.string().optional(),
    scope: z.string().optional(),
    tokenType: z.string().optional(),
    issuedAt: z.string(),
    lastUsed: z.string(),
    refreshed: z
      .boolean()
      .openapi({ description: "the returned token is newer than the one stored when the read began" }),
    hasRefreshToken: z.boolean().openapi({
      description: "a refresh token is stored; it never leaves the service except through the export endpoint",
    }),
  })
  .openapi("TokenRead");

export const TokenExportSchema = z
  .object({
    integration: z.string(),
    userId: z.string(),
    accessToken: z.string(),
    refreshToken: z.string().optional(),
    expiresAt: z.string().optional(),
    scope: z.string().optional(),
    tokenType: z.string().optional(),
    issuedAt: z.string(),
  })
  .openapi("TokenExport");

export const TokensDeletedSchema = z
  .object({
    deleted: z.number().int(),
    integrations: z.array(z.string()),
    revocations: z.array(
      z.object({
        integration: z.string(),
        outcome: z.enum(["revoked", "failed", "unsupported", "skipped"]),
        provider: z.string(),
        tokenTypeHint: z.enum(["refresh_token", "access_token"]).optional(),
        reason: z.string().optional(),
      }),
    ),
  })
  .openapi("TokensDeleted");

/** ?purpose= or, failing that, the X-Purpose header. */
function purposeOf(c: Context, q: { purpose?: string | undefined }): string | undefined {
  // The header was validated by the route's `headers` schema (PurposeHeadersSchema): too long or
  // unsafe is a 400 there, so it is never truncated here.
  return q.purpose || c.req.header("x-purpose")?.trim() || undefined;
}

export const StoreResultSchema = z.object({ created: z.boolean(), token: TokenMetadataSchema }).openapi("TokenStored");

const denied = errorResponse(
  "role not allowed, or (reads) denied by policy: details name the access request, deciding policy and reason",
);
const unauthenticated = errorResponse("missing or invalid API key");
const notFound = errorResponse("no token stored for this integration and user");

export function tokenRoutes(vault: TokenVault) {
  return createRouter()
    .openapi(
      createRoute({
        method: "put",
        path: "/v1/tokens/{integration}/{userId}",
        tags: ["tokens"],
        summary: "Store (create or replace) a user's token for an integration; values are encrypted before storage",
        request: {
          params: TokenParamsSchema,
          body: { required: true, content: { "application/json": { schema: StoreTokenBodySchema } } },
        },
        responses: {
          200: { description: "replaced", content: { "application/json": { schema: StoreResultSchema } } },
          201: { description: "created", content: { "application/json": { schema: StoreResultSchema } } },
          400: errorResponse(
            "invalid body or path (unknown fields, oversized or non-ASCII token, bad expiresAt, bad identifiers)",
          ),
          401: unauthenticated,
          403: errorResponse("not a writer"),
          503: errorResponse("database or audit log unavailable"),
        },
      }),
      async (c) => {
        const key = c.req.valid("param");
        const body = c.req.valid("json");
        const address = clientAddressOf(c);
        const userAgent = c.req.header("user-agent")?.slice(0, MAX_USER_AGENT) ?? null;
        const r = await vault.store(c.get("principal"), key, body, {
          ipAddress: address && address !== "unknown" ? address : null,
          userAgent,
        });
        return c.json(r, r.created ? 201 : 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/tokens/{integration}/{userId}",
        tags: ["tokens"],
        summary: "Read a token (after the access decision); refreshed first when it expires within 5 minutes",
        description:
          "Every read is an access request for {type: token, integration, userId} over the time range [now, now], " +
          "with the purpose from ?purpose= or the X-Purpose header. The decision is audited before anything is returned.",
        request: { params: TokenParamsSchema, query: ReadTokenQuerySchema, headers: PurposeHeadersSchema },
        responses: {
          200: { description: "the token", content: { "application/json": { schema: TokenReadSchema } } },
          400: errorResponse("bad path or query"),
          401: unauthenticated,
          403: denied,
          404: notFound,
          409: errorResponse(
            "REAUTH_REQUIRED: expired and cannot be refreshed (provider refused the refresh token, or none stored / no provider configured)",
          ),
          422: errorResponse("DECRYPTION_FAILED: the stored ciphertext does not belong to this record (audited)"),
          502: errorResponse(
            "UPSTREAM_FAILED: expired, and the provider could not refresh it just now (5xx, timeout); Retry-After says when the next attempt is allowed",
          ),
          503: errorResponse(
            "database or audit log unavailable; nothing released — or REFRESH_BACKOFF: expired and inside its refresh backoff window (no upstream attempt; Retry-After)",
          ),
        },
      }),
      async (c) => {
        const key = c.req.valid("param");
        const q = c.req.valid("query");
        const purpose = purposeOf(c, q);
        c.header("Cache-Control", "no-store");
        return c.json(
          await vault.read(c.get("principal"), key, { refresh: q.refresh, ...(purpose ? { purpose } : {}) }),
          200,
        );
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/tokens/{integration}/{userId}/export",
        tags: ["tokens"],
        summary:
          "Export a stored token with its refresh token (role exporter; a decision like a read, audited TOKEN_EXPORTED)",
        description:
          "For moving a user's grant off chronokms: the only response that ever carries a refresh token. " +
          "An access request for {type: token, integration, userId} at [now, now] like a read; the stored record is returned as is (no refresh).",
        request: { params: TokenParamsSchema, query: StatusQuerySchema, headers: PurposeHeadersSchema },
        responses: {
          200: {
            description: "the stored token, refresh token included",
            content: { "application/json": { schema: TokenExportSchema } },
          },
          400: errorResponse("bad path or query"),
          401: unauthenticated,
          403: errorResponse("not an exporter, or denied by policy"),
          404: notFound,
          422: errorResponse("DECRYPTION_FAILED: the stored ciphertext does not belong to this record (audited)"),
          503: errorResponse("database or audit log unavailable; nothing released"),
        },
      }),
      async (c) => {
        const purpose = purposeOf(c, c.req.valid("query"));
        c.header("Cache-Control", "no-store");
        return c.json(await vault.export(c.get("principal"), c.req.valid("param"), purpose ? { purpose } : {}), 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/tokens/{integration}/{userId}/status",
        tags: ["tokens"],
        summary:
          "Whether the token is valid, expired (refreshable) or needs re-authentication; never the token (a decision like a read)",
        request: { params: TokenParamsSchema, query: StatusQuerySchema, headers: PurposeHeadersSchema },
        responses: {
          200: { description: "status and metadata", content: { "application/json": { schema: TokenMetadataSchema } } },
          400: errorResponse("bad path"),
          401: unauthenticated,
          403: denied,
          404: notFound,
          503: errorResponse("database or audit log unavailable"),
        },
      }),
      async (c) => {
        const purpose = purposeOf(c, c.req.valid("query"));
        return c.json(await vault.status(c.get("principal"), c.req.valid("param"), purpose ? { purpose } : {}), 200);
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/v1/tokens/{integration}/{userId}",
        tags: ["tokens"],
        summary:
          "Revoke a user's token at the provider (RFC 7009, where supported), then delete it (audited with the outcome)",
        request: { params: TokenParamsSchema, query: DeleteTokenQuerySchema },
        responses: {
          204: { description: "deleted (the revocation outcome is in the TOKEN_DELETED audit row)" },
          400: errorResponse("bad path"),
          401: unauthenticated,
          403: errorResponse("not a writer"),
          404: notFound,
          502: errorResponse(
            "UPSTREAM_FAILED: revoke=required and the provider did not confirm the revocation; the record was kept",
          ),
          503: errorResponse("database or audit log unavailable"),
        },
      }),
      async (c) => {
        await vault.delete(c.get("principal"), c.req.valid("param"), { revoke: c.req.valid("query").revoke });
        return c.body(null, 204);
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/v1/users/{userId}/tokens",
        tags: ["tokens"],
        summary:
          "Revoke at their providers and delete every token of a user (audited; 200 with a count of 0 when there were none)",
        request: { params: UserParamsSchema, query: DeleteTokenQuerySchema },
        responses: {
          200: {
            description: "deleted",
            content: {
              "application/json": {
                schema: TokensDeletedSchema,
              },
            },
          },
          400: errorResponse("bad path"),
          502: errorResponse(
            "UPSTREAM_FAILED: revoke=required and a provider did not confirm a revocation; every record was kept",
          ),
          401: unauthenticated,
          403: errorResponse("not a writer"),
          503: errorResponse("database or audit log unavailable"),
        },
      }),
      async (c) =>
        c.json(
          await vault.deleteAllForUser(c.get("principal"), c.req.valid("param").userId, {
            revoke: c.req.valid("query").revoke,
          }),
          200,
        ),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/tokens",
        tags: ["tokens"],
        summary:
          "List the token records the caller's policies would let it read (metadata only), filtered and paginated; audited",
        description:
          "Each record is judged like a read of it; a page may hold fewer than limit items, so follow nextCursor until it is null.",
        request: { query: ListTokensQuerySchema.extend({ cursor: cursorQuery }), headers: PurposeHeadersSchema },
        responses: {
          200: {
            description: "a page of records; pass nextCursor as cursor for the next one",
            content: {
              "application/json": {
                schema: pageSchema(TokenMetadataSchema, "TokenList"),
              },
            },
          },
          400: errorResponse("bad filter, limit or cursor"),
          401: unauthenticated,
          403: errorResponse("not a reader"),
          503: errorResponse("database or audit log unavailable"),
        },
      }),
      async (c) => {
        const { cursor, ...q } = c.req.valid("query");
        const purpose = purposeOf(c, q);
        // The vault pages by row id; on the wire the cursor is opaque like every list's.
        const page = await vault.list(c.get("principal"), {
          ...q,
          ...(cursor !== undefined ? { cursor: decodeIdCursor(cursor) } : {}),
          ...(purpose ? { purpose } : {}),
        });
        return c.json({ ...page, nextCursor: page.nextCursor === null ? null : encodeIdCursor(page.nextCursor) }, 200);
      },
    );
}
