/** Shared fixtures for the key tests: a KeyService on a test database, and token rows sealed by the token convention. */
import { fromHex, kekFingerprint, keyringMac, keyringMacKey, parseKek } from "../../src/crypto/index.ts";
import type { Database } from "../../src/db/database.ts";
import { createLogger } from "../../src/log.ts";
import { createKeyService, type ManagedKeyService } from "../../src/keys/service.ts";
import { oauthTokenRewrappable } from "../../src/tokens/rewrap.ts";
import { fieldContexts, legacyTokenContext, sealTokens } from "../../src/tokens/record.ts";
import type { KeyService } from "../../src/keys/types.ts";
import { RETIRE_GRACE_MS } from "../../src/keys/slice-statements.ts";
import type { Clock } from "../../src/clock.ts";
import { TEST_KEK } from "../support/app.ts";

export const OTHER_KEK = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";
export const quietLog = createLogger("silent");

export function kekOf(hex: string) {
  const kek = fromHex(hex);
  return { kek, kekId: kekFingerprint(kek) };
}

export function keyService(
  db: Database,
  opts: { kekHex?: string; refreshIntervalMs?: number; sliceSeconds?: number; clock?: Clock } = {},
): Promise<ManagedKeyService> {
  return createKeyService({
    db,
    ...kekOf(opts.kekHex ?? TEST_KEK),
    sliceSeconds: opts.sliceSeconds ?? 3600,
    log: quietLog,
    rewrappables: [oauthTokenRewrappable(db)],
    ...(opts.refreshIntervalMs === undefined ? {} : { refreshIntervalMs: opts.refreshIntervalMs }),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
}

/**
 * Moves `version`'s rotation back past the retirement grace (statement lifetime + cache max-age),
 * as if the operator had waited that long; for tests whose subject is not the grace itself.
 */
export async function agePastRetireGrace(db: Database, version: number): Promise<void> {
  await db.prisma.masterKey.update({
    where: { version },
    data: { rotatedAt: new Date(Date.now() - RETIRE_GRACE_MS - 60_000) },
  });
}

/**
 * Marks every version as one that predates key separation (may hold v1 token envelopes), as the
 * key_separation migration does. The flag is under the keyring MAC, so the MAC is rewritten with
 * the KEK, as only chronokms (or someone holding the KEK) could.
 */
export async function markLegacyTokenEnvelopes(db: Database, kekHex = TEST_KEK): Promise<void> {
  const macKey = keyringMacKey(parseKek(kekHex));
  for (const r of await db.prisma.masterKey.findMany()) {
    const mac = keyringMac(macKey, {
      version: r.version,
      publicJwk: r.publicKeyJwk as never,
      sliceSeconds: r.sliceSeconds,
      createdAt: r.createdAt,
      legacyTokenEnvelopes: true,
    });
    await db.prisma.masterKey.update({
      where: { version: r.version },
      data: { legacyTokenEnvelopes: true, keyringMac: mac },
    });
  }
}

/** Moves a version's createdAt back (e.g. "active for three hours"), re-MACing the row with the KEK as chronokms would. */
export async function backdateVersion(
  db: Database,
  version: number,
  createdAt: Date,
  kekHex = TEST_KEK,
): Promise<void> {
  const r = await db.prisma.masterKey.findUniqueOrThrow({ where: { version } });
  const mac = keyringMac(keyringMacKey(parseKek(kekHex)), {
    version,
    publicJwk: r.publicKeyJwk as never,
    sliceSeconds: r.sliceSeconds,
    createdAt,
    legacyTokenEnvelopes: r.legacyTokenEnvelopes,
  });
  await db.prisma.masterKey.update({ where: { version }, data: { createdAt, keyringMac: mac } });
}

export const accessValue = (i: number) => `ya29.access-${i}-${"x".repeat(40)}`;
export const refreshValue = (i: number) => `1//refresh-${i}-${"y".repeat(40)}`;

/**
 * Inserts `count` token rows sealed through `keys` exactly as the token vault does (ids in insertion
 * order), row version 1; with `format: "v1"`, sealed the v1 way (ECDH-ES to the slice of ts, v1 ctx).
 */
export async function seedTokens(
  db: Database,
  keys: KeyService,
  count: number,
  opts: { from?: number; integration?: string; ts?: number; format?: "v1" | "v2" } = {},
): Promise<void> {
  const from = opts.from ?? 0;
  const integration = opts.integration ?? "gmail";
  const base = opts.ts ?? Date.UTC(2026, 0, 1);
  for (let start = from; start < from + count; start += 1000) {
    const data = [];
    for (let i = start; i < Math.min(start + 1000, from + count); i++) {
      const userId = `user-${i}`;
      const ts = base + i * 60_000; // spread over many slices
      if (opts.format === "v1") {
        const a = await keys.seal(accessValue(i), { ctx: legacyTokenContext(integration, userId, "access"), ts });
        const r =
          i % 5 === 0
            ? null
            : await keys.seal(refreshValue(i), { ctx: legacyTokenContext(integration, userId, "refresh"), ts });
        data.push({
          userId,
          integration,
          accessToken: a.jwe,
          refreshToken: r?.jwe ?? null,
          keyVersion: a.version,
          version: 1,
        });
        continue;
      }
      const t = await sealTokens(
        keys,
        { integration, userId },
        { accessToken: accessValue(i), refreshToken: i % 5 === 0 ? null : refreshValue(i) },
        1,
      );
      data.push({ userId, integration, ...t, version: 1 });
    }
    await db.prisma.oAuthToken.createMany({ data });
  }
}

/** Opens every token row with its own ctx; returns versions seen and any row that failed. */
export async function verifyTokens(
  db: Database,
  keys: KeyService,
): Promise<{ rows: number; byVersion: Map<number, number>; failures: string[] }> {
  const rows = await db.prisma.oAuthToken.findMany({ orderBy: { id: "asc" } });
  const byVersion = new Map<number, number>();
  const failures: string[] = [];
  const dec = new TextDecoder();
  for (const row of rows) {
    byVersion.set(row.keyVersion, (byVersion.get(row.keyVersion) ?? 0) + 1);
    const i = Number(row.userId.slice("user-".length));
    try {
      const a = dec.decode(await keys.openToken(row.accessToken, fieldContexts(row, "access")));
      if (a !== accessValue(i)) throw new Error("access plaintext differs");
      if (!row.accessToken.startsWith("ey")) throw new Error("not a JWE");
      const header = JSON.parse(Buffer.from(row.accessToken.split(".")[0]!, "base64url").toString()) as { kid: string };
      const kidVersion = header.kid.startsWith("tok:") ? Number(header.kid.slice(4)) : Number(header.kid.split(":")[0]);
      if (kidVersion !== row.keyVersion) throw new Error("keyVersion does not match the JWE kid");
      if (row.refreshToken !== null) {
        const r = dec.decode(await keys.openToken(row.refreshToken, fieldContexts(row, "refresh")));
        if (r !== refreshValue(i)) throw new Error("refresh plaintext differs");
      }
    } catch (e) {
      failures.push(`${row.id}: ${(e as Error).message}`);
    }
  }
  return { rows: rows.length, byVersion, failures };
}
