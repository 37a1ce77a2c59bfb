/**
 * Audit log routes: list (filters + cursor), stats and verify. No auth here: the integrator mounts
 * the admin guard in front of /v1/audit-logs.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Database } from "../../db/database.ts";
import { AUDIT_EVENT_TYPES } from "../../audit/types.ts";
import { MAX_LIST_LIMIT, auditStats, listAuditLogs } from "../../audit/query.ts";
import { loadMasterPublicKeys, verifyAuditLog, type VerifyResult } from "../../audit/verify.ts";
import { createRouter, errorResponse } from "../router.ts";
import { safeString } from "../../lib/text.ts";

/** Epoch milliseconds or an ISO-8601 date-time with offset. */
const instant = z
  .string()
  .refine((v) => /^\d{1,15}$/.test(v) || z.iso.datetime({ offset: true }).safeParse(v).success, {
    message: "expected epoch milliseconds or an ISO-8601 date-time such as 2026-11-23T12:00:00Z",
  })
  .transform((v) => (/^\d+$/.test(v) ? Number(v) : Date.parse(v)))
  .openapi({ example: "2026-11-23T12:00:00Z" });

const windowFields = {
  from: instant.optional().openapi({ description: "inclusive lower bound (epoch ms or ISO-8601)" }),
  to: instant.optional().openapi({ description: "exclusive upper bound (epoch ms or ISO-8601)" }),
};
const fromBeforeTo = (q: { from?: number; to?: number }) => q.from === undefined || q.to === undefined || q.from <= q.to;
const fromBeforeToIssue = { message: "from must not be after to", path: ["to"] };

const ListQuery = z
  .strictObject({
    eventType: z.enum(AUDIT_EVENT_TYPES).optional(),
    actor: safeString("actor").min(1).max(256).optional(),
    ...windowFields,
    cursor: safeString("cursor").min(1).max(512).optional().openapi({ description: "nextCursor of the previous page" }),
    limit: z
      .string()
      .regex(/^\d{1,3}$/, "expected a whole number")
      .transform(Number)
      .pipe(z.number().int().min(1).max(MAX_LIST_LIMIT))
      .optional()
      .openapi({ description: `page size, 1..${MAX_LIST_LIMIT} (default 100)`, example: "100" }),
  })
  .refine(fromBeforeTo, fromBeforeToIssue);

const StatsQuery = z.strictObject(windowFields).refine(fromBeforeTo, fromBeforeToIssue);

const AuditLogSchema = z
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

const PageSchema = z.object({ items: z.array(AuditLogSchema), nextCursor: z.string().nullable() }).openapi("AuditLogPage");

const StatsSchema = z
  .object({
    total: z.number().int(),
    byEventType: z.record(z.string(), z.number().int()),
    bySuccess: z.object({ success: z.number().int(), failure: z.number().int() }),
    chains: z.number().int(),
  })
  .openapi("AuditStats");

const VerifySchema = z
  .object({
    valid: z.boolean(),
    checked: z.number().int(),
    chains: z.number().int(),
    firstInvalid: z.object({ seq: z.number().int(), id: z.string(), chainId: z.string(), reason: z.string() }).optional(),
    checkpoints: z.number().int(),
    unclosedChains: z.number().int(),
    unsignedTailRows: z.number().int(),
    elapsedMs: z.number().int(),
  })
  .openapi("AuditVerification");

const json = <T,>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

/** `onVerified` sees every verification result (the webhook service turns a failure into audit.verify_failed). */
export function auditRoutes(deps: { db: Database; onVerified?: (result: VerifyResult) => Promise<void> }) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/v1/audit-logs",
        tags: ["audit"],
        summary: "List audit rows, newest first, with filters and an opaque cursor",
        request: { query: ListQuery },
        responses: { 200: json(PageSchema, "a page of audit rows"), 400: errorResponse("bad filter or cursor"), 503: errorResponse("database unavailable") },
      }),
      async (c) => {
        const q = c.req.valid("query");
        return c.json(await listAuditLogs(deps.db, { ...q, limit: q.limit ?? 100 }), 200);
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
        summary: "Recompute the hash chains and check checkpoint signatures; reports the first broken link",
        request: { query: z.strictObject({}) },
        responses: { 200: json(VerifySchema, "verification result (valid or not)"), 400: errorResponse("unexpected query parameter") },
      }),
      async (c) => {
        const result = await verifyAuditLog(deps.db, { publicKeys: await loadMasterPublicKeys(deps.db) });
        await deps.onVerified?.(result);
        return c.json(result, 200);
      },
    );
}
