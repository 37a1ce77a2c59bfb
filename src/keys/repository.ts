/**
 * The `master_keys` table: reading versions, a cheap change stamp for other processes' rotations,
 * and the writes (first key, rotation, retirement, KEK rewrap), each one transaction serialized
 * across processes by one advisory lock.
 */
import type { Database } from "../db/database.ts";
import type { Prisma } from "../db/generated/client.ts";
import type { EcPublicJwk } from "../crypto/index.ts";
import { isP256PublicJwk } from "../crypto/index.ts";
import type { KeyStatus } from "./types.ts";

export interface MasterKeyRow {
  id: string;
  version: number;
  publicJwk: EcPublicJwk;
  privateKeyJwe: string;
  kekId: string;
  sliceSeconds: number;
  status: KeyStatus;
  createdAt: Date;
  rotatedAt: Date | null;
  retiredAt: Date | null;
  /** Created before key separation: may still hold v1 token envelopes (see schema.prisma). */
  legacyTokenEnvelopes: boolean;
}

type Tx = Prisma.TransactionClient;

// Shared by every chronokms process; distinct from the migration lock key.
const KEY_LOCK = String(0x6368726f6e6f6b6bn & 0x7fffffffffffffffn); // "chronokk"

const STATUSES: readonly KeyStatus[] = ["active", "decrypt-only", "retired"];

function toRow(r: {
  id: string;
  version: number;
  publicKeyJwk: Prisma.JsonValue;
  privateKeyJwe: string;
  kekId: string;
  sliceSeconds: number;
  status: string;
  createdAt: Date;
  rotatedAt: Date | null;
  retiredAt: Date | null;
  legacyTokenEnvelopes: boolean;
}): MasterKeyRow {
  if (!STATUSES.includes(r.status as KeyStatus)) throw new Error(`master_keys version ${r.version} has unknown status "${r.status}"`);
  if (!isP256PublicJwk(r.publicKeyJwk)) throw new Error(`master_keys version ${r.version} has a malformed public JWK`);
  return {
    id: r.id,
    version: r.version,
    publicJwk: r.publicKeyJwk,
    privateKeyJwe: r.privateKeyJwe,
    kekId: r.kekId,
    sliceSeconds: r.sliceSeconds,
    status: r.status as KeyStatus,
    createdAt: r.createdAt,
    rotatedAt: r.rotatedAt,
    retiredAt: r.retiredAt,
    legacyTokenEnvelopes: r.legacyTokenEnvelopes,
  };
}

export class MasterKeyRepository {
  constructor(private readonly db: Database) {}

  async list(tx: Tx | Database["prisma"] = this.db.prisma): Promise<MasterKeyRow[]> {
    const rows = await tx.masterKey.findMany({ orderBy: { version: "asc" } });
    return rows.map(toRow);
  }

  /** One short string that changes whenever a version is added or changes status. */
  async stamp(): Promise<string> {
    const rows = await this.db.prisma.$queryRawUnsafe<{ stamp: string | null }[]>(
      `SELECT string_agg("version" || ':' || "status", ',' ORDER BY "version") AS stamp FROM "master_keys"`,
    );
    return rows[0]?.stamp ?? "";
  }

  /** Runs `fn` in a transaction holding the key-management lock (released at commit/rollback). */
  async locked<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.db.prisma.$transaction(
      async (tx) => {
        await tx.$queryRawUnsafe(`SELECT pg_advisory_xact_lock($1::bigint)::text AS locked`, KEY_LOCK);
        return fn(tx);
      },
      { timeout: 30_000, maxWait: 30_000 },
    );
  }

  async insert(
    tx: Tx,
    row: { version: number; publicJwk: EcPublicJwk; privateKeyJwe: string; kekId: string; sliceSeconds: number; status: KeyStatus },
  ): Promise<MasterKeyRow> {
    const created = await tx.masterKey.create({
      data: {
        version: row.version,
        publicKeyJwk: row.publicJwk as unknown as Prisma.InputJsonValue,
        privateKeyJwe: row.privateKeyJwe,
        kekId: row.kekId,
        sliceSeconds: row.sliceSeconds,
        status: row.status,
      },
    });
    return toRow(created);
  }

  async setStatus(tx: Tx, version: number, status: KeyStatus, at: Date): Promise<void> {
    await tx.masterKey.update({
      where: { version },
      data: status === "decrypt-only" ? { status, rotatedAt: at } : status === "retired" ? { status, retiredAt: at } : { status },
    });
  }

  /** Compare-and-set on the KEK fingerprint, so a concurrent rewrap never overwrites a newer wrap. */
  async replaceWrap(version: number, fromKekId: string, privateKeyJwe: string, kekId: string): Promise<boolean> {
    const r = await this.db.prisma.masterKey.updateMany({ where: { version, kekId: fromKekId }, data: { privateKeyJwe, kekId } });
    return r.count === 1;
  }
}
