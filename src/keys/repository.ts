/**
 * The `master_keys` table: reading versions, a cheap change stamp for other processes' rotations,
 * and the writes (first key, rotation, retirement, KEK rewrap), serialized across processes by one
 * advisory lock. Every row carries its keyring MAC (src/crypto/keyring-mac.ts), written here on
 * insert and rewrap; `checkRow` is the one check of a row against the KEK (MAC, and the public key
 * against the unwrapped private key).
 */
import type { Database } from "../db/database.ts";
import type { Prisma } from "../db/generated/client.ts";
import type { EcPrivateJwk, EcPublicJwk } from "../crypto/index.ts";
import { isP256PublicJwk, keyringMac, publicPointOf, verifyKeyringMac } from "../crypto/index.ts";
import { KeyringIntegrityError } from "../errors.ts";
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
  /** Null only on rows written before keyring MACs existed. */
  keyringMac: string | null;
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
  keyringMac: string | null;
  legacyTokenEnvelopes: boolean;
}): MasterKeyRow {
  if (!STATUSES.includes(r.status as KeyStatus))
    throw new Error(`master_keys version ${r.version} has unknown status "${r.status}"`);
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
    keyringMac: r.keyringMac,
    legacyTokenEnvelopes: r.legacyTokenEnvelopes,
  };
}

export interface Keyring {
  publicKeys: Map<string, EcPublicJwk>;
  rejected: Array<{ version: number; reason: string }>;
}

/** Splits rows into trusted public keys (MAC holds) and refused versions. */
export function loadKeyring(rows: MasterKeyRow[], macKey: Uint8Array): Keyring {
  const publicKeys = new Map<string, EcPublicJwk>();
  const rejected: Keyring["rejected"] = [];
  for (const row of rows) {
    const problem = macProblem(macKey, row);
    if (problem) rejected.push({ version: row.version, reason: `master_keys version ${row.version} ${problem}` });
    else publicKeys.set(String(row.version), row.publicJwk);
  }
  return { publicKeys, rejected };
}

/** Why a row fails its keyring MAC, or null when it holds. */
export function macProblem(
  macKey: Uint8Array,
  row: Pick<
    MasterKeyRow,
    "version" | "publicJwk" | "sliceSeconds" | "createdAt" | "keyringMac" | "legacyTokenEnvelopes"
  >,
): string | null {
  if (row.keyringMac === null) return "has no keyring MAC";
  return verifyKeyringMac(macKey, row, row.keyringMac)
    ? null
    : "fails its keyring MAC (inserted or edited outside chronokms?)";
}

/**
 * Refuses (KeyringIntegrityError) a row whose MAC fails, or whose stored public JWK is not the
 * public key of `privateJwk` (when given: the row's own JWE, unwrapped). So a substituted public
 * key can neither verify a signature nor be served in the JWKS.
 */
export async function checkRow(macKey: Uint8Array, row: MasterKeyRow, privateJwk?: EcPrivateJwk): Promise<void> {
  const problem = macProblem(macKey, row);
  if (problem)
    throw new KeyringIntegrityError(
      `master key version ${row.version} ${problem}; refusing to load it — restore master_keys from a backup`,
    );
  if (privateJwk) await checkPublicMatches(row, privateJwk);
}

export async function checkPublicMatches(
  row: Pick<MasterKeyRow, "version" | "publicJwk">,
  privateJwk: EcPrivateJwk,
): Promise<void> {
  const p = await publicPointOf(privateJwk);
  if (p.x !== row.publicJwk.x || p.y !== row.publicJwk.y) {
    throw new KeyringIntegrityError(
      `master key version ${row.version}: the stored public key is not the public key of its wrapped private key (substituted?); refusing to load it`,
    );
  }
}

export class MasterKeyRepository {
  /** `macKey`: keyringMacKey(KEK) of the KEK rows are written under. */
  constructor(
    private readonly db: Database,
    private readonly macKey: Uint8Array,
  ) {}

  async list(tx: Tx | Database["prisma"] = this.db.prisma): Promise<MasterKeyRow[]> {
    const rows = await tx.masterKey.findMany({ orderBy: { version: "asc" } });
    return rows.map(toRow);
  }

  /** One short string that changes whenever a version is added or changes status (or ends v1 token envelopes). */
  async stamp(): Promise<string> {
    const rows = await this.db.prisma.$queryRawUnsafe<{ stamp: string | null }[]>(
      `SELECT string_agg("version" || ':' || "status" || ':' || "legacyTokenEnvelopes"::text, ',' ORDER BY "version") AS stamp FROM "master_keys"`,
    );
    return rows[0]?.stamp ?? "";
  }

  /** How many master key versions exist, in `tx` (the first key is created only when none does). */
  count(tx: Tx): Promise<number> {
    return tx.masterKey.count();
  }

  /** Takes the key-management lock in `tx` (released at its commit/rollback). */
  async lock(tx: Tx): Promise<void> {
    await tx.$queryRawUnsafe(`SELECT pg_advisory_xact_lock($1::bigint)::text AS locked`, KEY_LOCK);
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
    row: Pick<MasterKeyRow, "version" | "publicJwk" | "privateKeyJwe" | "kekId" | "sliceSeconds" | "status">,
  ): Promise<MasterKeyRow> {
    // createdAt is set here (not by the database default) because the MAC covers it.
    const createdAt = new Date(Math.floor(Date.now()));
    const created = await tx.masterKey.create({
      data: {
        createdAt,
        keyringMac: keyringMac(this.macKey, {
          version: row.version,
          publicJwk: row.publicJwk,
          sliceSeconds: row.sliceSeconds,
          createdAt,
        }),
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
      data:
        status === "decrypt-only"
          ? { status, rotatedAt: at }
          : status === "retired"
            ? { status, retiredAt: at }
            : { status },
    });
  }

  /**
   * Ends v1 token-envelope acceptance for every version still accepting them (one-way; the only
   * writer of `legacyTokenEnvelopes` after the key_separation migration). Call inside `locked`,
   * in the transaction that found no v1 value left. The flag is under the keyring MAC (a SQL edit
   * turning it back on fails the row at load), so each changed row's MAC is recomputed here.
   * Returns the versions it changed.
   */
  async clearLegacyTokenEnvelopes(tx: Tx): Promise<number[]> {
    const rows = await tx.$queryRawUnsafe<Array<{ version: number }>>(
      `UPDATE "master_keys" SET "legacyTokenEnvelopes" = false WHERE "legacyTokenEnvelopes" RETURNING "version"`,
    );
    const versions = rows.map((r) => Number(r.version)).sort((x, y) => x - y);
    if (versions.length > 0) {
      for (const r of await tx.masterKey.findMany({ where: { version: { in: versions } } })) {
        const row = toRow(r);
        await tx.masterKey.updateMany({
          where: { version: row.version },
          data: { keyringMac: keyringMac(this.macKey, row) },
        });
      }
    }
    return versions;
  }

  /**
   * Compare-and-set on the KEK fingerprint, so a concurrent rewrap never overwrites a newer wrap.
   * The MAC is recomputed under this repository's (the new) KEK.
   */
  async replaceWrap(
    tx: Tx,
    row: MasterKeyRow,
    fromKekId: string,
    privateKeyJwe: string,
    kekId: string,
  ): Promise<boolean> {
    const r = await tx.masterKey.updateMany({
      where: { version: row.version, kekId: fromKekId },
      data: { privateKeyJwe, kekId, keyringMac: keyringMac(this.macKey, row) },
    });
    return r.count === 1;
  }

  /** Sets the MAC of a row written before MACs existed (only where none is set yet). */
  async setMac(tx: Tx, row: MasterKeyRow): Promise<void> {
    await tx.masterKey.updateMany({
      where: { version: row.version, keyringMac: null },
      data: { keyringMac: keyringMac(this.macKey, row) },
    });
  }
}

/**
 * Master public keys by version (kid), all statuses (old checkpoints stay verifiable after
 * rotation), trusting only rows whose keyring MAC holds under `macKey` (keyringMacKey(KEK)): the
 * shape `verifyAuditLog` takes.
 */
export async function loadMasterPublicKeys(
  db: Database,
  macKey: Uint8Array,
): Promise<{
  publicKeys: (kid: string) => EcPublicJwk | undefined;
  rejectedKeys: Array<{ version: number; reason: string }>;
}> {
  const k = loadKeyring(await new MasterKeyRepository(db, macKey).list(), macKey);
  return { publicKeys: (kid) => k.publicKeys.get(kid), rejectedKeys: k.rejected };
}

/** Fingerprints of the KEKs that wrapped the stored master keys (none on a fresh database). */
export async function storedKekIds(db: Database): Promise<string[]> {
  const rows = await db.prisma.masterKey.findMany({ select: { kekId: true }, distinct: ["kekId"] });
  return rows.map((r) => r.kekId);
}
