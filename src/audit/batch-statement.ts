/**
 * One audit batch as ONE SQL statement: the audit rows, the attached access_requests rows and the
 * webhook outbox rows are data-modifying CTEs of a single INSERT, each reading its rows from one
 * JSON text parameter (jsonb_to_recordset). A single statement is atomic on its own, so in
 * autocommit it commits all of them or none with one round trip (and, on the embedded database,
 * one pass through the Postgres pipeline) whatever the batch size. The text depends only on which
 * parts are present (at most four variants), so PostgreSQL keeps each one as a named prepared
 * statement.
 *
 * JSON rather than typed arrays (unnest): one parameter per table, no driver-specific array
 * binding (PGlite and pg differ there), and nested values (details, resource, policyIds) travel
 * as they are.
 */
import type { Prisma } from "../db/generated/client.ts";
import type { Row } from "./rows.ts";

/** Rows of other tables that derive from the batch's event rows and must commit with them. */
export interface AuditOutbox {
  /** The entries the event rows produce, as one JSON array text; null when they produce none. */
  entries(rows: readonly Row[]): string | null;
  /** A data-modifying statement (INSERT …) reading those entries from the text parameter `param` (e.g. `$3`). */
  insertSql(param: string): string;
}

export interface BatchStatement {
  /** Stable per variant: the prepared statement's name on PostgreSQL. */
  name: string;
  text: string;
  values: string[];
}

const AUDIT_INSERT = (
  p: string,
) => `INSERT INTO "audit_logs" ("id", "seq", "chainId", "timestamp", "eventType", "actor", "target", "startTime", "endTime", "success", "details", "prevHash", "hash")
  SELECT r.i, r.s, r.c, r.t, r.e, r.a, r.g, r.st, r.et, r.ok, r.d, r.p, r.h
  FROM jsonb_to_recordset(${p}::text::jsonb) AS r(i uuid, s bigint, c text, t bigint, e text, a text, g text, st bigint, et bigint, ok boolean, d jsonb, p text, h text)`;

const ACCESS_REQUESTS_INSERT = (
  p: string,
) => `INSERT INTO "access_requests" ("id", "requesterId", "resourceType", "resource", "startTime", "endTime", "purpose", "granted", "denialReason", "policyIds", "policyId", "keyCount")
  SELECT q.id, q.rq, q.rt, q.res, to_timestamp(q.st / 1000.0), to_timestamp(q.et / 1000.0), q.pu, q.gr, q.dr,
    ARRAY(SELECT jsonb_array_elements_text(q.pids)), q.pid, q.kc
  FROM jsonb_to_recordset(${p}::text::jsonb) AS q(id uuid, rq text, rt text, res jsonb, st bigint, et bigint, pu text, gr boolean, dr text, pids jsonb, pid text, kc int)`;

/** The statement text per variant, built once (it is also the prepared statement's identity). */
const texts = new Map<string, string>();

/**
 * The batch's statement. `rows` must not be empty (a batch with no audit row writes nothing);
 * the other parts are left out when empty.
 */
export function batchStatement(
  rows: readonly Row[],
  accessRequests: readonly Prisma.AccessRequestCreateManyInput[],
  outbox: AuditOutbox | undefined,
): BatchStatement {
  const values = [auditRowsJson(rows)];
  if (accessRequests.length > 0) values.push(accessRequestsJson(accessRequests));
  const entries = outbox?.entries(rows) ?? null;
  if (entries !== null) values.push(entries);
  const variant = `a${accessRequests.length > 0 ? "r" : ""}${entries !== null ? "o" : ""}`;
  let text = texts.get(variant);
  if (text === undefined) {
    const parts = [AUDIT_INSERT("$1")];
    if (accessRequests.length > 0) parts.push(ACCESS_REQUESTS_INSERT("$2"));
    if (entries !== null) parts.push(outbox!.insertSql(`$${parts.length + 1}`));
    // Every part but the last is a data-modifying CTE: PostgreSQL runs each exactly once, referenced or not.
    const last = parts.pop()!;
    text = parts.length === 0 ? last : `WITH ${parts.map((p, i) => `w${i} AS (${p})`).join(", ")}\n${last}`;
    texts.set(variant, text);
  }
  return { name: `chronokms_audit_batch_${variant}`, text, values };
}

function auditRowsJson(rows: readonly Row[]): string {
  // Assembled by hand so details go in as the exact canonical JSON that was hashed.
  const s = JSON.stringify;
  return `[${rows
    .map(
      (r) =>
        `{"i":${s(r.id)},"s":${r.seq},"c":${s(r.chainId)},"t":${r.timestamp},"e":${s(r.eventType)},"a":${s(r.actor)},"g":${s(r.target)},"st":${s(r.startTime)},"et":${s(r.endTime)},"ok":${r.success},"d":${r.detailsJson},"p":${s(r.prevHash)},"h":${s(r.hash)}}`,
    )
    .join(",")}]`;
}

function accessRequestsJson(rows: readonly Prisma.AccessRequestCreateManyInput[]): string {
  // Instants as epoch milliseconds and policyIds as a JSON array: parsing ISO text into timestamptz,
  // and JSON arrays into text[], cost PGlite a few hundred µs per row each (measured).
  const ts = (d: Date | string) => (d instanceof Date ? d : new Date(d)).getTime();
  return JSON.stringify(
    rows.map((r) => ({
      id: r.id ?? Bun.randomUUIDv7(),
      rq: r.requesterId,
      rt: r.resourceType,
      res: r.resource,
      st: ts(r.startTime),
      et: ts(r.endTime),
      pu: r.purpose ?? null,
      gr: r.granted,
      dr: r.denialReason ?? null,
      pids: Array.isArray(r.policyIds) ? r.policyIds : (r.policyIds?.set ?? []),
      pid: r.policyId ?? null,
      kc: r.keyCount ?? null,
    })),
  );
}
