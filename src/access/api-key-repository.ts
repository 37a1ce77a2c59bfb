/**
 * The one owner of `api_keys` SQL. The lookup of a presented key (on a verification-cache miss)
 * runs off Prisma's query runtime (src/db/raw-query.ts); the rest stays on Prisma.
 */
import type { AuditTx } from "../audit/types.ts";
import type { Database } from "../db/database.ts";
import { rawSelect } from "../db/raw-query.ts";
import type { ApiKey, Requester } from "../db/generated/client.ts";

/** A key joined to its requester: what verification needs. */
export interface KeyRow {
  secretHash: string;
  roles: string[] | null;
  enabled: boolean;
  expiresAt: Date | null;
  rid: string;
  requesterId: string;
  department: string | null;
  requesterEnabled: boolean;
  publicKeyJwk: unknown;
}

const SELECT_FOR_VERIFY = `SELECT k."secretHash", k."roles", k."enabled", k."expiresAt",
  r."id"::text AS "rid", r."requesterId", r."department", r."enabled" AS "requesterEnabled", r."publicKeyJwk"
  FROM api_keys k JOIN requesters r ON r."id" = k."requesterId"
  WHERE k."keyId" = $1`;

export class ApiKeyRepository {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  async forVerification(keyId: string): Promise<KeyRow | null> {
    const [row] = await rawSelect<KeyRow>(this.#db, "chronokms_api_key_verify", SELECT_FOR_VERIFY, [keyId]);
    return row ?? null;
  }

  requester(requesterUuid: string): Promise<Pick<Requester, "requesterId"> | null> {
    return this.#db.prisma.requester.findUnique({ where: { id: requesterUuid }, select: { requesterId: true } });
  }

  /** Keys holding the admin role, through `tx` when given (the bootstrap's check under its lock). */
  countAdmins(tx?: AuditTx): Promise<number> {
    return (tx ?? this.#db.prisma).apiKey.count({ where: { roles: { has: "admin" } } });
  }

  insert(
    tx: AuditTx,
    data: {
      keyId: string;
      secretHash: string;
      requesterId: string;
      name: string | null;
      roles: string[];
      expiresAt: Date | null;
    },
  ): Promise<ApiKey> {
    return tx.apiKey.create({ data });
  }

  withRequester(keyId: string): Promise<(ApiKey & { requester: Pick<Requester, "requesterId"> }) | null> {
    return this.#db.prisma.apiKey.findUnique({
      where: { keyId },
      include: { requester: { select: { requesterId: true } } },
    });
  }

  /** Disables the key if it belongs to this requester; false when it does not (or is gone). */
  async disable(tx: AuditTx, requesterUuid: string, keyId: string): Promise<boolean> {
    const { count } = await tx.apiKey.updateMany({
      where: { keyId, requesterId: requesterUuid },
      data: { enabled: false },
    });
    return count > 0;
  }

  listFor(requesterUuid: string): Promise<ApiKey[]> {
    return this.#db.prisma.apiKey.findMany({ where: { requesterId: requesterUuid }, orderBy: { createdAt: "asc" } });
  }

  /** Buffered `lastUsedAt` values in one statement; never lowers a stored value. */
  async touchLastUsed(keyIds: string[], times: string[]): Promise<void> {
    await this.#db.prisma.$executeRaw`
      UPDATE api_keys AS k SET "lastUsedAt" = v.t
      FROM (SELECT unnest(${keyIds}::text[]) AS id, unnest(${times}::text[])::timestamptz AS t) AS v
      WHERE k."keyId" = v.id AND (k."lastUsedAt" IS NULL OR k."lastUsedAt" < v.t)`;
  }
}
