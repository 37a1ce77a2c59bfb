/**
 * Requesters (the callers behind API keys): create, read, update, delete, each audited. Any
 * change drops the requester's cached verifications in this process (others: within the
 * verification cache TTL).
 */
import { z } from "zod";
import type { Database } from "../db/database.ts";
import type { AuditSink, AuditTx } from "../audit/types.ts";
import type { Logger } from "../log.ts";
import { Prisma, type Requester } from "../db/generated/client.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { identifier, text } from "../lib/schemas.ts";
import { findUnsafeText, safeString, unsafeTextMessage } from "../lib/text.ts";
import { importPublicJwk } from "../crypto/jwk.ts";
import type { ApiKeyService, ApiKeyView } from "./api-keys.ts";
import { decodeIdCursor, encodeIdCursor, type Page, pageOf } from "../lib/keyset-cursor.ts";

const B64_32 = /^[A-Za-z0-9_-]{43}$/;

/** A P-256 public JWK; a private member is refused with a message that says so. */
export const PublicJwkSchema = z
  .record(safeString("publicKeyJwk member"), z.unknown(), { error: "publicKeyJwk must be a JSON object" })
  .superRefine((v, ctx) => {
    if ("d" in v) {
      ctx.addIssue({
        code: "custom",
        message: 'publicKeyJwk must be a public key: remove the private member "d" (and keep that key secret)',
      });
      return;
    }
    if (v.kty !== "EC" || v.crv !== "P-256")
      ctx.addIssue({ code: "custom", message: 'publicKeyJwk must be an EC key on P-256 (kty "EC", crv "P-256")' });
    else if (typeof v.x !== "string" || !B64_32.test(v.x) || typeof v.y !== "string" || !B64_32.test(v.y)) {
      ctx.addIssue({ code: "custom", message: "publicKeyJwk.x and .y must be 32-byte base64url coordinates" });
    }
    const allowed = new Set(["kty", "crv", "x", "y", "kid", "alg", "use", "key_ops"]);
    for (const k of Object.keys(v))
      if (!allowed.has(k)) ctx.addIssue({ code: "custom", message: `publicKeyJwk has an unexpected member "${k}"` });
    if (v.kid !== undefined && (typeof v.kid !== "string" || v.kid.length > 256))
      ctx.addIssue({ code: "custom", message: "publicKeyJwk.kid must be a string of at most 256 characters" });
  })
  .transform((v) => {
    const out: Record<string, string> = { kty: "EC", crv: "P-256", x: v.x as string, y: v.y as string };
    if (typeof v.kid === "string") out.kid = v.kid;
    return out;
  })
  .describe("P-256 public JWK (no d); grants are encrypted to it (ECDH-ES + A256GCM)");

const metadata = z
  .record(z.string(), z.unknown(), { error: "metadata must be a JSON object" })
  .superRefine((m, ctx) => {
    // Free-form JSON: every key and string value inside must still be storable text.
    const at = findUnsafeText(m);
    if (at !== null) ctx.addIssue({ code: "custom", path: at, message: unsafeTextMessage("metadata") });
  })
  .refine((m) => JSON.stringify(m).length <= 8192, { error: "metadata must be at most 8 KiB as JSON" });
const email = safeString("email").pipe(z.email({ error: "email must be an email address" }).max(320));

export const RequesterCreateSchema = z.strictObject({
  requesterId: identifier("requesterId").describe("External, unique requester id (what policies name)"),
  name: text("name", 200),
  department: text("department", 128).optional(),
  email: email.optional(),
  enabled: z.boolean({ error: "enabled must be true or false" }).optional(),
  metadata: metadata.optional(),
  publicKeyJwk: PublicJwkSchema.optional(),
});

/** requesterId is immutable: policies and audit rows name it. */
export const RequesterPatchSchema = z
  .strictObject({
    name: text("name", 200).optional(),
    department: text("department", 128).nullable().optional(),
    email: email.nullable().optional(),
    enabled: z.boolean({ error: "enabled must be true or false" }).optional(),
    metadata: metadata.nullable().optional(),
    publicKeyJwk: PublicJwkSchema.nullable().optional(),
  })
  .refine((p) => Object.values(p).some((v) => v !== undefined), {
    error: "a requester patch must change at least one field",
  });

export type RequesterCreate = z.output<typeof RequesterCreateSchema>;
export type RequesterPatch = z.output<typeof RequesterPatchSchema>;

export interface RequesterView {
  id: string;
  requesterId: string;
  name: string;
  department: string | null;
  email: string | null;
  enabled: boolean;
  metadata: unknown;
  publicKeyJwk: unknown;
  createdAt: string;
  updatedAt: string;
  apiKeys?: ApiKeyView[];
}

export interface RequesterServiceOptions {
  db: Database;
  audit: AuditSink;
  log: Logger;
  apiKeys: ApiKeyService;
}

/** The requester row with this public id, created if missing (the bootstrap admin's requester). */
export function ensureRequesterRow(tx: AuditTx, requesterId: string, name: string): Promise<Requester> {
  return tx.requester.upsert({ where: { requesterId }, create: { requesterId, name }, update: {} });
}

export class RequesterService {
  constructor(private readonly o: RequesterServiceOptions) {}

  async create(input: RequesterCreate, actor: string): Promise<RequesterView> {
    if (input.publicKeyJwk) await assertOnCurve(input.publicKeyJwk);
    // The row and its REQUESTER_CREATED audit row commit together, or neither does.
    const row = await this.o.audit.apply({
      change: async (tx) => {
        try {
          return await tx.requester.create({
            data: {
              requesterId: input.requesterId,
              name: input.name,
              department: input.department ?? null,
              email: input.email ?? null,
              enabled: input.enabled ?? true,
              ...(input.metadata ? { metadata: input.metadata as object } : {}),
              ...(input.publicKeyJwk ? { publicKeyJwk: input.publicKeyJwk } : {}),
            },
          });
        } catch (err) {
          if (prismaCode(err) === "P2002")
            throw new ConflictError(`a requester with requesterId "${input.requesterId}" already exists`);
          throw err;
        }
      },
      event: (row) => auditEvent("REQUESTER_CREATED", actor, row),
    });
    return viewOf(row);
  }

  async get(id: string): Promise<RequesterView> {
    const row = await this.row(id);
    return { ...viewOf(row), apiKeys: await this.o.apiKeys.listFor(id) };
  }

  async findByRequesterId(requesterId: string): Promise<RequesterView | null> {
    const row = await this.o.db.prisma.requester.findUnique({ where: { requesterId } });
    return row ? viewOf(row) : null;
  }

  /** Ordered by id (uuid v7, so by creation); `cursor` continues after the last item of the previous page. */
  async list(opts: {
    limit: number;
    cursor?: string;
    requesterId?: string;
    enabled?: boolean;
  }): Promise<Page<RequesterView>> {
    const rows = await this.o.db.prisma.requester.findMany({
      where: {
        ...(opts.requesterId !== undefined ? { requesterId: opts.requesterId } : {}),
        ...(opts.enabled !== undefined ? { enabled: opts.enabled } : {}),
        ...(opts.cursor !== undefined ? { id: { gt: decodeIdCursor(opts.cursor) } } : {}),
      },
      orderBy: { id: "asc" },
      take: opts.limit + 1,
    });
    return pageOf(rows, opts.limit, viewOf, (last) => encodeIdCursor(last.id));
  }

  async update(id: string, patch: RequesterPatch, actor: string): Promise<RequesterView> {
    await this.row(id); // 404 before any validation of the key
    if (patch.publicKeyJwk) await assertOnCurve(patch.publicKeyJwk);
    const data = {
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.department !== undefined ? { department: patch.department } : {}),
      ...(patch.email !== undefined ? { email: patch.email } : {}),
      ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
      ...(patch.metadata !== undefined
        ? { metadata: patch.metadata === null ? jsonNull() : (patch.metadata as object) }
        : {}),
      ...(patch.publicKeyJwk !== undefined
        ? { publicKeyJwk: patch.publicKeyJwk === null ? jsonNull() : patch.publicKeyJwk }
        : {}),
    };
    const row = await this.o.audit.apply({
      change: async (tx) => {
        try {
          return await tx.requester.update({ where: { id }, data });
        } catch (err) {
          if (prismaCode(err) === "P2025") throw new NotFoundError("requester");
          throw err;
        }
      },
      event: (row) => {
        const event = auditEvent("REQUESTER_UPDATED", actor, row);
        return { ...event, details: { ...event.details, changed: Object.keys(data) } };
      },
    });
    this.o.apiKeys.invalidateRequester(id);
    return viewOf(row);
  }

  /** Deletes the requester and its API keys. Its access_requests and audit rows stay. */
  async remove(id: string, actor: string): Promise<void> {
    await this.o.audit.apply({
      change: async (tx) => {
        const rows = await tx.$queryRaw<Requester[]>`DELETE FROM requesters WHERE id = ${id}::uuid RETURNING *`;
        if (!rows[0]) throw new NotFoundError("requester");
        return rows[0];
      },
      event: (row) => auditEvent("REQUESTER_DELETED", actor, row),
    });
    this.o.apiKeys.invalidateRequester(id);
  }

  private async row(id: string): Promise<Requester> {
    const row = await this.o.db.prisma.requester.findUnique({ where: { id } });
    if (!row) throw new NotFoundError("requester");
    return row;
  }
}

async function assertOnCurve(jwk: Record<string, string>): Promise<void> {
  try {
    await importPublicJwk(jwk as never, "ECDH");
  } catch {
    throw new ValidationError("invalid requester: publicKeyJwk: the point is not on the P-256 curve");
  }
}

/** Sets a nullable JSON column to SQL NULL. */
function jsonNull() {
  return Prisma.DbNull;
}

function viewOf(row: Requester): RequesterView {
  return {
    id: row.id,
    requesterId: row.requesterId,
    name: row.name,
    department: row.department,
    email: row.email,
    enabled: row.enabled,
    metadata: row.metadata,
    publicKeyJwk: row.publicKeyJwk,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function auditEvent(
  eventType: "REQUESTER_CREATED" | "REQUESTER_UPDATED" | "REQUESTER_DELETED",
  actor: string,
  row: Requester,
) {
  return {
    eventType,
    actor,
    target: `requester:${row.requesterId}`,
    success: true,
    details: {
      id: row.id,
      requesterId: row.requesterId,
      department: row.department,
      enabled: row.enabled,
      hasPublicKey: row.publicKeyJwk !== null,
    } as Record<string, unknown>,
  };
}

function prismaCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : undefined;
}
