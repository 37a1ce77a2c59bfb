/**
 * Audit log routes: list (filters + cursor), stats, verify (every finding, against the anchor log
 * too) and head (the signed chain heads an external monitor keeps). No auth here: the integrator
 * mounts the admin guard in front of /v1/audit-logs.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Database } from "../../db/database.ts";
import { AUDIT_EVENT_TYPES } from "../../audit/types.ts";
import { MAX_LIST_LIMIT, auditStats, listAuditLogs } from "../../audit/query.ts";
import { verifyWithKeyring, type VerifyResult } from "../../audit/verify.ts";
import { signedHeads } from "../../audit/heads.ts";
import type { AuditWriter } from "../../audit/writer.ts";
import type { ManagedKeyService } from "../../keys/service.ts";
import { createRouter, errorResponse } from "../router.ts";
import { safeString } from "../../lib/text.ts";
import { QueryInstantSchema } from "../../lib/schemas.ts";
import { cursorQuery, limitQuery, pageSchema } from "../paging.ts";

// The one instant parser; a list window is half-open [from, to) (lib/schemas.ts).
const windowFields = {
  from: QueryInstantSchema.optional().openapi({ description: "inclusive lower bound (epoch ms or ISO-8601)" }),
  to: QueryInstantSchema.optional().openapi({ description: "exclusive upper bound (epoch ms or ISO-8601)" }),
};
const fromBeforeTo = (q: { from?: number; to?: number }) =>
  q.from === undefined || q.to === undefined || q.from <= q.to;
const fromBeforeToIssue = { message: "from must not be after to", path: ["to"] };

const ListQuery = z
  .strictObject({
    eventType: z.enum(AUDIT_EVENT_TYPES).optional(),
    actor: safeString("actor").min(1).max(256).optional(),
    ...windowFields,
    cursor: cursorQuery,
    limit: limitQuery(MAX_LIST_LIMIT, 100),
  })
  .refine(fromBeforeTo, fromBeforeToIssue);

const StatsQuery = z.strictObject(windowFields).refine(fromBeforeTo, fromBeforeToIssue);

export const AuditLogSchema = z
  .object({
    id: z.string(),
    chainId: z.string(),
    seq: z.number().int(),
    timestamp: z.number().int().openapi({ description: "epoch ms" }),
    eventType: z.string(),
    actor: z.string(),
    target: z.string().nullable(),
    startTime: z.number().int().nullable(),
    endTime: z.number().int().nullable(),
    success: z.boolean(),
    details: z.unknown(),
    prevHash: z.string(),
    hash: z.string(),
    createdAt: z.string(),
  })
  .openapi("AuditLog");

const PageSchema = pageSchema(AuditLogSchema, "AuditLogPage");

export const StatsSchema = z
  .object({
    total: z.number().int(),
    byEventType: z.record(z.string(), z.number().int()),
    bySuccess: z.object({ success: z.number().int(), failure: z.number().int() }),
    chains: z.number().int(),
  })
  .openapi("AuditStats");

export const VerifySchema = z
  .object({
    valid: z.boolean(),
    checked: z.number().int(),
    chains: z.number().int(),
    firstInvalid: z
      .object({ seq: z.number().int(), id: z.string(), chainId: z.string(), reason: z.string() })
      .optional(),
    findings: z
      .array(
        z.object({
          kind: z.string().openapi({
            description:
              "row-edited, row-missing, link-broken, row-inserted, forged-chain, chain-rewritten, bad-signature, untrusted-key, key-row, unsealed-tail, anchor-missing, anchor-mismatch, chain-missing, anchor-invalid",
          }),
          chainId: z.string().nullable(),
          seq: z.number().int().optional(),
          id: z.string().optional(),
          reason: z.string(),
        }),
      )
      .openapi({ description: "every finding; empty when valid" }),
    checkpoints: z.number().int(),
    unclosedChains: z.number().int(),
    unsignedTailRows: z.number().int(),
    anchorsChecked: z.number().int(),
    elapsedMs: z.number().int(),
  })
  .openapi("AuditVerification");

const AnchorSchema = z
  .object({
    v: z.literal(1),
    chainId: z.string(),
    seq: z.number().int().openapi({ description: "position of the checkpoint row" }),
    hash: z.string().openapi({ description: "hash of the checkpoint row" }),
    statement: z.object({
      chainId: z.string(),
      seq: z.number().int(),
      headHash: z.string(),
      kind: z.string(),
      lastRowId: z.string().optional(),
    }),
    signature: z.string().openapi({ description: "compact JWS (ES256, kid = master key version) over the statement" }),
    at: z.string(),
  })
  .openapi("AuditAnchor");

const HeadsSchema = z
  .object({
    heads: z
      .array(AnchorSchema)
      .openapi({ description: "the last signed checkpoint of every chain; one line each of the anchor log format" }),
  })
  .openapi("AuditHeads");

const json = <T>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

/** `onVerified` sees every verification result (the webhook service turns a failure into audit.verify_failed). */
export function auditRoutes(deps: {
  db: Database;
  audit: AuditWriter;
  keys: ManagedKeyService;
  anchorFile: string | null;
  onVerified?: (result: VerifyResult) => Promise<void>;
}) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/audit-logs",
        tags: ["audit"],
        summary: "List audit rows, newest first, with filters and an opaque cursor",
        request: { query: ListQuery },
        responses: {
          200: json(PageSchema, "a page of audit rows"),
          400: errorResponse("bad filter or cursor"),
          503: errorResponse("database unavailable"),
        },
      }),
      async (c) => {
        const q = c.req.valid("query");
        return c.json(await listAuditLogs(deps.db, q), 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/audit-logs/stats",
        tags: ["audit"],
        summary: "Counts by event type and outcome over an optional window",
        request: { query: StatsQuery },
        responses: { 200: json(StatsSchema, "counts"), 400: errorResponse("bad window") },
      }),
      async (c) => c.json(await auditStats(deps.db, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/audit-logs/verify",
        tags: ["audit"],
        summary: "Recompute the hash chains, check checkpoint signatures and the anchor log; lists every finding",
        request: { query: z.strictObject({}) },
        responses: {
          200: json(VerifySchema, "verification result (valid or not)"),
          400: errorResponse("unexpected query parameter"),
        },
      }),
      async (c) => {
        const result = await verifyWithKeyring(deps.db, {
          keyring: await deps.keys.keyring(),
          anchorFile: deps.anchorFile,
        });
        await deps.onVerified?.(result);
        return c.json(result, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/audit-logs/head",
        tags: ["audit"],
        summary:
          "Signed current chain heads, for an external monitor to keep (abandoned chains are sealed and this process's chain is checkpointed first)",
        request: { query: z.strictObject({}) },
        responses: {
          200: json(HeadsSchema, "the last signed checkpoint of every chain"),
          400: errorResponse("unexpected query parameter"),
          503: errorResponse("database unavailable"),
        },
      }),
      async (c) => {
        await deps.audit.sealAbandonedChains();
        await deps.audit.checkpointNow();
        return c.json({ heads: await signedHeads(deps.db) }, 200);
      },
    );
}
