/** Audit test helpers: a real ES256 checkpoint signer (src/crypto), writers on a test database, sample events. */
import {
  generateMasterKeyPair,
  keyringMac,
  keyringMacKey,
  signPayload,
  wrapPrivateJwk,
  parseKek,
  type MasterKeyPair,
} from "../../src/crypto/index.ts";
import { createLogger } from "../../src/log.ts";
import { createAuditWriter, type AuditWriter, type AuditWriterOptions } from "../../src/audit/writer.ts";
import type { ChainedFields, CheckpointSigner } from "../../src/audit/chain.ts";
import type { PublicKeyLookup } from "../../src/audit/verify.ts";
import { loadMasterPublicKeys } from "../../src/keys/repository.ts";
import type { AuditEvent } from "../../src/audit/types.ts";
import type { Database } from "../../src/db/database.ts";
import type { Clock } from "../../src/clock.ts";
import { TEST_KEK } from "../support/app.ts";

export interface TestKey {
  version: number;
  pair: MasterKeyPair;
  signer: CheckpointSigner;
  publicKeys: PublicKeyLookup;
}

export async function testKey(version = 1): Promise<TestKey> {
  const pair = await generateMasterKeyPair({ kid: String(version) });
  return {
    version,
    pair,
    signer: (payload, typ) => signPayload(payload, pair.privateJwk, { kid: String(version), typ }),
    publicKeys: (kid) => (kid === String(version) ? pair.publicJwk : undefined),
  };
}

/** The keyring MAC key of TEST_KEK. */
export const testMacKey = keyringMacKey(parseKek(TEST_KEK));

/** Trusted public keys of the test database (rows whose keyring MAC holds under TEST_KEK), for verifyAuditLog. */
export function trustedKeys(db: Database) {
  return loadMasterPublicKeys(db, testMacKey);
}

/** Stores the key as a master_keys row (private half wrapped under the test KEK, MAC'd), for loadMasterPublicKeys. */
export async function storeMasterKey(
  db: Database,
  key: TestKey,
  opts: { mac?: boolean; status?: string } = {},
): Promise<void> {
  const createdAt = new Date(Date.UTC(2026, 10, 23));
  await db.prisma.masterKey.create({
    data: {
      createdAt,
      keyringMac:
        opts.mac === false
          ? null
          : keyringMac(testMacKey, {
              version: key.version,
              publicJwk: key.pair.publicJwk,
              sliceSeconds: 3600,
              createdAt,
            }),
      version: key.version,
      publicKeyJwk: key.pair.publicJwk as object,
      privateKeyJwe: await wrapPrivateJwk(key.pair.privateJwk, parseKek(TEST_KEK), { version: key.version }),
      kekId: "test",
      sliceSeconds: 3600,
      status: opts.status ?? "active",
    },
  });
}

export const quietLog = createLogger((process.env.TEST_LOG_LEVEL as never) ?? "silent");

/** A clock tests can move; starts at a fixed instant. */
export function testClock(start = Date.UTC(2026, 10, 23, 12, 0, 0)): Clock & { advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

export function writerFor(
  db: Database,
  key: TestKey | undefined,
  extra: Partial<AuditWriterOptions> = {},
): AuditWriter {
  return createAuditWriter({
    db,
    clock: testClock(),
    log: quietLog,
    signer: key?.signer,
    checkpointEvery: 1000,
    ...extra,
  });
}

export function sampleEvent(i: number, over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    eventType: i % 3 === 0 ? "ACCESS_DENIED" : "ACCESS_GRANTED",
    actor: `requester-${i % 5}`,
    target: `token:gmail:user-${i}`,
    startTime: 1_700_000_000_000 + i,
    endTime: 1_700_000_360_000 + i,
    success: i % 3 !== 0,
    details: { i, policyId: `p-${i % 4}`, nested: { list: [1, "two", null, { z: true, a: 1.5 }] } },
    ...over,
  };
}

/**
 * Runs SQL "as a superuser" with the append-only trigger out of the way, as an attacker with
 * database access would: PostgreSQL via session_replication_role = replica (user triggers do not
 * fire), PGlite via ALTER TABLE … DISABLE TRIGGER USER (it runs as superuser).
 */
export async function asSuperuser(db: Database, sql: string, params: unknown[] = []): Promise<void> {
  if (db.pool) {
    const client = await db.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("SET LOCAL session_replication_role = replica");
      await client.query(sql, params);
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      client.release();
    }
    return;
  }
  const pglite = db.pglite!;
  await pglite.transaction(async (tx) => {
    await tx.exec(`ALTER TABLE "audit_logs" DISABLE TRIGGER USER`);
    await tx.query(sql, params);
    await tx.exec(`ALTER TABLE "audit_logs" ENABLE TRIGGER USER`);
  });
}

export interface StoredRow extends ChainedFields {
  prevHash: string;
  hash: string;
}

/** A chain's rows as the verifier reads them (bigints as decimal text). */
export async function chainRows(db: Database, chainId: string): Promise<StoredRow[]> {
  return db.prisma.$queryRawUnsafe<StoredRow[]>(
    `SELECT a."id"::text AS "id", a."chainId", a."seq"::text AS "seq", a."timestamp"::text AS "timestamp", a."eventType", a."actor", a."target",
            a."startTime"::text AS "startTime", a."endTime"::text AS "endTime", a."success", a."details", a."prevHash", a."hash"
       FROM "audit_logs" a WHERE a."chainId" = $1 ORDER BY a."seq"`,
    chainId,
  );
}
