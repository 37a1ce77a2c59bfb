/**
 * Programming-error checks on an audit event before it joins a batch: no secret-named keys in
 * `details`, and nothing the database would refuse (so one bad event cannot fail its batch-mates).
 * Failures throw TypeError naming the offending key path, never its value.
 */
import type { Prisma } from "../db/generated/client.ts";
import { AUDIT_EVENT_TYPES, type AuditEvent, type AuditWrite } from "./types.ts";

const eventTypes = new Set<string>(AUDIT_EVENT_TYPES);

// Normalised (lower case, no "_" or "-") key names that may only ever hold a secret.
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  "d",
  "k",
  "dp",
  "dq",
  "qi",
  "kek",
  "jwe",
  "plaintext",
  "authorization",
  "bearer",
  "credentials",
]);
// …and suffixes that do: accessToken, refresh_token, idToken, clientSecret, apiKey, privateJwk, rootSeed…
export const SECRET_SUFFIX =
  /(token|secret|password|passphrase|apikey|privatekey|privatejwk|privatekeyjwe|seed|seeds|secrethash)$/;

export function isSecretKeyName(key: string): boolean {
  let verdict = VERDICTS.get(key);
  if (verdict === undefined) {
    const k = key.toLowerCase().replace(/[_-]/g, "");
    verdict = SECRET_KEYS.has(k) || SECRET_SUFFIX.test(k);
    if (key.length <= MAX_VERDICT_NAME && VERDICTS.size < MAX_VERDICTS) VERDICTS.set(key, verdict);
  }
  return verdict;
}

// Every event's details are checked key by key: the names come from code, so remember each verdict
// (a bounded number of short ones: past the cap, or when long, a name is simply judged again).
const VERDICTS = new Map<string, boolean>();
const MAX_VERDICTS = 4096;
const MAX_VERDICT_NAME = 64;

const NUL_OR_SURROGATE = /[\u0000\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export class AuditEventError extends TypeError {
  override readonly name = "AuditEventError";
}

/** Throws AuditEventError when the event could leak a secret or could not be stored verbatim. */
export function assertStorableEvent(e: AuditEvent): void {
  if (!eventTypes.has(e.eventType)) throw new AuditEventError(`audit event: unknown eventType`);
  if (e.eventType === "AUDIT_CHECKPOINT")
    throw new AuditEventError("audit event: AUDIT_CHECKPOINT rows are written by the audit writer only");
  checkText(e.actor, "actor", false);
  if (e.target !== undefined && e.target !== null) checkText(e.target, "target", true);
  checkTime(e.startTime, "startTime");
  checkTime(e.endTime, "endTime");
  if (typeof e.success !== "boolean") throw new AuditEventError("audit event: success must be a boolean");
  if (e.details !== undefined) {
    if (typeof e.details !== "object" || e.details === null || Array.isArray(e.details))
      throw new AuditEventError("audit event: details must be an object");
    checkJson(e.details, "details", 0);
  }
}

/** An event and its attached access_requests row (`record`). */
export function assertStorableWrite(w: AuditWrite): void {
  assertStorableEvent(w.event);
  if (w.accessRequest) assertStorableAccessRequest(w.accessRequest);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const INT_MAX = 2 ** 31 - 1;

/**
 * The same for the access_requests row attached to an event: it goes into the batch's one
 * statement, so a value its columns cannot hold (keyCount beyond int, an invalid instant, a NUL)
 * would otherwise fail every caller of the batch and abandon the chain.
 */
export function assertStorableAccessRequest(r: Prisma.AccessRequestCreateManyInput): void {
  if (r.id !== undefined && (typeof r.id !== "string" || !UUID.test(r.id)))
    throw new AuditEventError("access request: id must be a uuid");
  checkText(r.requesterId, "accessRequest.requesterId", false);
  checkText(r.resourceType, "accessRequest.resourceType", false);
  checkJson(r.resource, "accessRequest.resource", 0);
  for (const [path, v] of [
    ["startTime", r.startTime],
    ["endTime", r.endTime],
  ] as const) {
    const ms = v instanceof Date ? v.getTime() : typeof v === "string" ? Date.parse(v) : Number.NaN;
    if (!Number.isFinite(ms)) throw new AuditEventError(`access request: ${path} must be a valid instant`);
  }
  for (const [path, v] of [
    ["purpose", r.purpose],
    ["denialReason", r.denialReason],
    ["policyId", r.policyId],
  ] as const)
    if (v !== undefined && v !== null) checkText(v, `accessRequest.${path}`, true);
  if (typeof r.granted !== "boolean") throw new AuditEventError("access request: granted must be a boolean");
  const ids = Array.isArray(r.policyIds) ? r.policyIds : (r.policyIds?.set ?? []);
  if (!Array.isArray(ids)) throw new AuditEventError("access request: policyIds must be an array");
  for (const [i, id] of ids.entries()) checkText(id, `accessRequest.policyIds[${i}]`, false);
  const n = r.keyCount;
  if (n !== undefined && n !== null && !(Number.isInteger(n) && n >= 0 && n <= INT_MAX))
    throw new AuditEventError("access request: keyCount must be an integer the column holds (0…2^31−1)");
}

function checkText(v: unknown, path: string, allowEmpty: boolean): void {
  if (typeof v !== "string" || (!allowEmpty && v.length === 0))
    throw new AuditEventError(`audit event: ${path} must be a${allowEmpty ? "" : " non-empty"} string`);
  // PostgreSQL text refuses NUL, and a lone surrogate would be stored as U+FFFD, breaking the hash.
  // (Most text has no NUL and no surrogate at all: one scan settles it.)
  if (NUL_OR_SURROGATE.test(v) && (v.includes("\u0000") || LONE_SURROGATE.test(v)))
    throw new AuditEventError(`audit event: ${path} holds a NUL or an unpaired surrogate`);
}

function checkTime(v: unknown, path: string): void {
  if (v === undefined || v === null) return;
  if (typeof v !== "number" || !Number.isSafeInteger(v))
    throw new AuditEventError(`audit event: ${path} must be epoch milliseconds (a safe integer)`);
}

const MAX_DEPTH = 32;

function checkJson(v: unknown, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new AuditEventError(`audit event: ${path} is nested too deeply`);
  if (v === null || typeof v === "boolean") return;
  if (typeof v === "string") {
    checkText(v, path, true);
    return;
  }
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new AuditEventError(`audit event: ${path} is not a finite number`);
    return;
  }
  if (Array.isArray(v)) {
    for (const [i, item] of v.entries()) checkJson(item, `${path}[${i}]`, depth + 1);
    return;
  }
  if (typeof v === "object") {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null)
      throw new AuditEventError(`audit event: ${path} is not a plain object`);
    const obj = v as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      if (isSecretKeyName(key))
        throw new AuditEventError(
          `audit event: ${path}.${key} looks like a secret; audit rows never hold token values, keys, seeds or API secrets`,
        );
      // The member's path is only built when something under it is wrong.
      const item = obj[key];
      if (NUL_OR_SURROGATE.test(key)) checkText(key, `${path}.${key}`, true);
      if (item === undefined) continue;
      const plain =
        item === null || typeof item === "boolean" || (typeof item === "string" && !NUL_OR_SURROGATE.test(item));
      if (!plain || depth + 1 > MAX_DEPTH) checkJson(item, `${path}.${key}`, depth + 1);
    }
    return;
  }
  throw new AuditEventError(`audit event: ${path} is a ${typeof v}, which JSON cannot hold`);
}
