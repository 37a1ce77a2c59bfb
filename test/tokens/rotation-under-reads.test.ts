/**
 * Acceptance: a key rotation over 10,000 token records moves every one of them to the new version
 * while concurrent HTTP readers keep reading random tokens without a single failure.
 *
 * PostgreSQL: the service is the in-process app on a real loopback port; `bun scripts/keys-rotate.ts`
 * runs as a separate OS process on the same database (as an operator would run it), then
 * `--retire <old>` the same way, with the readers still running.
 * PGlite (smaller): PGlite is single-process, so no second process can open it; the rotation goes
 * through `POST /v1/keys/rotate`, whose re-encryption runs in the background of the serving process
 * (`rewrapInBackground`), sharing its one thread with the readers; retirement is in-process.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Principal } from "../../src/access/principal.ts";
import { runRewrap } from "../../src/keys/rewrap.ts";
import type { ManagedKeyService } from "../../src/keys/service.ts";
import type { KeyService } from "../../src/keys/types.ts";
import { fieldContexts, sealTokens } from "../../src/tokens/record.ts";
import { TokenRefresher } from "../../src/tokens/refresh.ts";
import { TokenVault } from "../../src/tokens/vault.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { createTestDatabase, describeEachDb, type TestDatabase, describeOnPostgres } from "../support/databases.ts";
import { runBun } from "../support/processes.ts";
import { BOOTSTRAP_KEY, callApi, provision } from "./helpers.ts";
import { agePastRetireGrace } from "../keys/helpers.ts";

const INTEGRATION = "gmail";
const VIA_HTTP = 5;
const accessOf = (i: number) => `ya29.rot-${i}-${"a".repeat(100)}`;
const refreshOf = (i: number) => `1//rot-${i}-${"r".repeat(60)}`;
/** Every 7th record has no refresh token, so both row shapes are re-sealed and read. */
const hasRefresh = (i: number) => i % 7 !== 0;
const userOf = (i: number) => `user-${i}`;

/**
 * `count` records through the vault's sealing helper (ctx per row and field, ts = write time,
 * keyVersion = the version sealed under) in bulk INSERTs, then VIA_HTTP more through the real PUT.
 */
async function seed(
  db: TestDatabase,
  keys: ManagedKeyService,
  base: string,
  writer: string,
  count: number,
): Promise<void> {
  for (let start = 0; start < count; start += 1000) {
    const data = [];
    for (let i = start; i < Math.min(start + 1000, count); i++) {
      const now = Date.now();
      const sealed = await sealTokens(
        keys,
        { integration: INTEGRATION, userId: userOf(i) },
        { accessToken: accessOf(i), refreshToken: hasRefresh(i) ? refreshOf(i) : null },
        1,
      );
      const at = new Date(now);
      data.push({
        userId: userOf(i),
        integration: INTEGRATION,
        ...sealed,
        createdAt: at,
        updatedAt: at,
        issuedAt: at,
        tokenType: "Bearer",
      });
    }
    await db.prisma.oAuthToken.createMany({ data });
  }
  for (let i = count; i < count + VIA_HTTP; i++) {
    const res = await callApi(base, writer, "PUT", `/v1/tokens/${INTEGRATION}/${userOf(i)}`, {
      accessToken: accessOf(i),
      ...(hasRefresh(i) ? { refreshToken: refreshOf(i) } : {}),
      tokenType: "Bearer",
    });
    expect(res.status).toBe(201);
  }
}

interface ReadStats {
  reads: number;
  failures: string[];
}

/** `loops` concurrent loops of GET on random records until `stop` resolves; every answer is checked. */
function readContinuously(base: string, reader: string, total: number, loops: number): { stop(): Promise<ReadStats> } {
  const stats: ReadStats = { reads: 0, failures: [] };
  let running = true;
  const loop = async () => {
    while (running) {
      const i = Math.floor(Math.random() * total);
      try {
        const res = await callApi(base, reader, "GET", `/v1/tokens/${INTEGRATION}/${userOf(i)}?refresh=never`);
        const body = (await res.json()) as { accessToken?: string; refreshToken?: string; hasRefreshToken?: boolean };
        stats.reads++;
        if (res.status !== 200) stats.failures.push(`${userOf(i)}: HTTP ${res.status} ${JSON.stringify(body)}`);
        else if (
          body.accessToken !== accessOf(i) ||
          body.refreshToken !== undefined ||
          body.hasRefreshToken !== hasRefresh(i)
        )
          stats.failures.push(`${userOf(i)}: wrong plaintext`);
      } catch (err) {
        stats.reads++;
        stats.failures.push(`${userOf(i)}: ${(err as Error).message}`);
      }
    }
  };
  const all = Array.from({ length: loops }, loop);
  return {
    async stop() {
      running = false;
      await Promise.all(all);
      return stats;
    },
  };
}

/** Every record on `version`, and every field opens with its own row's ctx to the value written. */
async function verifyAll(db: TestDatabase, keys: ManagedKeyService, total: number, version: number): Promise<void> {
  const byVersion = await db.prisma.oAuthToken.groupBy({ by: ["keyVersion"], _count: { _all: true } });
  expect(byVersion.map((g) => [g.keyVersion, g._count._all])).toEqual([[version, total]]);
  const rows = await db.prisma.oAuthToken.findMany({
    select: { userId: true, integration: true, accessToken: true, refreshToken: true, version: true },
  });
  const dec = new TextDecoder();
  const wrong: string[] = [];
  for (const row of rows) {
    const i = Number(row.userId.slice("user-".length));
    const a = dec.decode(await keys.openToken(row.accessToken, fieldContexts(row, "access")));
    const r =
      row.refreshToken === null
        ? null
        : dec.decode(await keys.openToken(row.refreshToken, fieldContexts(row, "refresh")));
    if (a !== accessOf(i) || r !== (hasRefresh(i) ? refreshOf(i) : null)) wrong.push(row.userId);
  }
  expect(wrong).toEqual([]);
}

async function auditChainValid(base: string): Promise<void> {
  const res = await callApi(base, BOOTSTRAP_KEY, "GET", "/v1/audit-logs/verify");
  expect(res.status).toBe(200);
  const body = (await res.json()) as { valid: boolean; checked: number; firstInvalid?: unknown };
  expect(body.firstInvalid).toBeUndefined();
  expect(body.valid).toBe(true);
}

function figure(label: string, records: number, ms: number, stats: ReadStats): string {
  return `${label}: ${records} records in ${(ms / 1000).toFixed(1)} s (${Math.round(records / (ms / 1000))}/s) with ${stats.reads} concurrent reads, ${stats.failures.length} errors`;
}

describeOnPostgres("keys:rotate (separate process) over 10,000 token records under concurrent reads", () => {
  const RECORDS = 10_000;
  const TOTAL = RECORDS + VIA_HTTP;
  let db: TestDatabase;
  let t: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    t = await startTestApp(db, { listen: true, env: { BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY } });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await db?.close();
  });

  const script = (args: string[]) =>
    runBun(["scripts/keys-rotate.ts", ...args], { LOG_LEVEL: "warn", DATABASE_URL: db.url! });

  test("every record moves to the new version, 0 failed reads; then --retire succeeds and the audit chain verifies", async () => {
    const keys = t.runtime.keys;
    const { writer, reader } = await provision(t.url, BOOTSTRAP_KEY);
    const old = (await keys.active()).version;
    await seed(db, keys, t.url, writer, RECORDS);

    const readers = readContinuously(t.url, reader, TOTAL, 4);
    const started = performance.now();
    const rotated = await script([]);
    const rotationMs = performance.now() - started;
    // Reads go on through the retirement too: a reader racing it must re-read, never fail.
    await agePastRetireGrace(db, old); // as if the statement lifetime had passed (test/keys/retire-grace.test.ts)
    const retired = await script(["--retire", String(old)]);
    const stats = await readers.stop();

    expect(rotated.stderr.replace(/re-encrypting:[^\n]*\n?/g, "")).toBe("");
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toContain(`version ${old + 1} is active, version ${old} is decrypt-only`);
    expect(rotated.stdout).toContain(`re-encrypted ${TOTAL} record(s) to version ${old + 1}`);
    expect(retired.stderr).toBe("");
    expect(retired.code).toBe(0);
    expect(retired.stdout).toContain(`version ${old} retired`);
    // The script's own re-encryption time, without process start-up and the before/after counts.
    const rewrapS = Number(/re-encrypted \d+ record\(s\) to version \d+ in ([0-9.]+) s/.exec(rotated.stdout)?.[1]);
    console.log(
      `${figure("rotation (postgres, keys:rotate process, wall clock incl. start-up)", TOTAL, rotationMs, stats)}; re-encryption alone ${rewrapS.toFixed(1)} s (${Math.round(TOTAL / rewrapS)}/s)`,
    );
    expect(stats.failures.slice(0, 10)).toEqual([]);
    expect(stats.reads).toBeGreaterThan(100);

    await keys.refresh();
    await verifyAll(db, keys, TOTAL, old + 1);
    expect((await db.prisma.masterKey.findUnique({ where: { version: old } }))?.status).toBe("retired");
    expect(await db.prisma.auditLog.count({ where: { eventType: "KEY_ROTATED" } })).toBe(1);
    expect(await db.prisma.auditLog.count({ where: { eventType: "KEY_RETIRED" } })).toBe(1);
    expect(await db.prisma.auditLog.count({ where: { eventType: "DECRYPT_FAILED" } })).toBe(0);
    await auditChainValid(t.url);
  }, 120_000);
});

describe("[pglite] POST /v1/keys/rotate (background re-encryption in the serving process) under concurrent reads", () => {
  const RECORDS = 2_000;
  const TOTAL = RECORDS + VIA_HTTP;
  let db: TestDatabase;
  let t: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase("pglite");
    t = await startTestApp(db, { listen: true, env: { BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY } });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await db?.close();
  });

  test("every record moves to the new version, 0 failed reads; then retiring the old version succeeds and the audit chain verifies", async () => {
    const keys = t.runtime.keys;
    const { writer, reader } = await provision(t.url, BOOTSTRAP_KEY);
    const old = (await keys.active()).version;
    await seed(db, keys, t.url, writer, RECORDS);

    const readers = readContinuously(t.url, reader, TOTAL, 3);
    const started = performance.now();
    const res = await callApi(t.url, BOOTSTRAP_KEY, "POST", "/v1/keys/rotate");
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ version: old + 1, previous: old, pending: TOTAL });
    // The re-encryption is in the background: wait until no record is left on the old version.
    for (;;) {
      const left = await db.prisma.oAuthToken.count({ where: { keyVersion: { not: old + 1 } } });
      if (left === 0) break;
      if (performance.now() - started > 60_000) throw new Error(`${left} record(s) still on older versions after 60 s`);
      await Bun.sleep(50);
    }
    const rotationMs = performance.now() - started;
    await agePastRetireGrace(db, old);
    const r = await keys.retire(old, { actor: "test" });
    const stats = await readers.stop();

    expect(r).toEqual({ version: old, alreadyRetired: false });
    console.log(figure("rotation (pglite, background re-encryption)", TOTAL, rotationMs, stats));
    expect(stats.failures.slice(0, 10)).toEqual([]);
    // Reads overlapped the re-encryption (v2 token envelopes re-seal fast, so the window is short).
    expect(stats.reads).toBeGreaterThan(5);
    await verifyAll(db, keys, TOTAL, old + 1);
    expect(await db.prisma.auditLog.count({ where: { eventType: "DECRYPT_FAILED" } })).toBe(0);
    await auditChainValid(t.url);
  }, 120_000);
});

describeEachDb("a read racing a rotation that re-seals its row and retires the old version", (h) => {
  test("the vault re-reads the row once and returns the token; no DECRYPT_FAILED row", async () => {
    const t = await startTestApp(h.db, { env: { BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY } });
    try {
      const { runtime } = t;
      const keys = runtime.keys;
      const { writer } = await provision(t, BOOTSTRAP_KEY, "-race");
      expect(
        (
          await callApi(t, writer, "PUT", `/v1/tokens/${INTEGRATION}/${userOf(1)}`, {
            accessToken: accessOf(1),
            refreshToken: refreshOf(1),
          })
        ).status,
      ).toBe(201);
      const old = (await keys.active()).version;
      const reader = await runtime.db.prisma.requester.findUniqueOrThrow({ where: { requesterId: "svc-reader-race" } });
      const principal: Principal = {
        id: reader.id,
        requesterId: reader.requesterId,
        department: null,
        keyId: "test",
        roles: ["reader"],
        publicKeyJwk: null,
      };

      // Between the vault's SELECT and its first open: rotate, re-encrypt everything, retire the old version.
      let raced = false;
      const racing: KeyService = {
        active: () => keys.active(),
        get: (v) => keys.get(v),
        seal: (p, o) => keys.seal(p, o),
        sign: (p, ty) => keys.sign(p, ty),
        jwks: () => keys.jwks(),
        open: (jwe, o) => keys.open(jwe, o),
        sealToken: (p, o) => keys.sealToken(p, o),
        resealTokens: (items) => keys.resealTokens(items),
        openToken: async (jwe, o) => {
          if (!raced) {
            raced = true;
            await keys.rotate();
            await runRewrap(keys, keys.rewrappables());
            await agePastRetireGrace(runtime.db, old);
            await keys.retire(old);
          }
          return keys.openToken(jwe, o);
        },
      };
      const deps = { db: runtime.db, keys: racing, audit: runtime.audit, clock: runtime.clock, log: runtime.log };
      const refresher = new TokenRefresher({ ...deps, providers: runtime.config.providers, timeoutMs: 1000 });
      const vault = new TokenVault({ ...deps, decider: runtime.access.decider, refresher });
      const got = await vault.read(principal, { integration: INTEGRATION, userId: userOf(1) }, { refresh: "never" });
      await vault.close();
      expect(raced).toBe(true);
      expect(got.accessToken).toBe(accessOf(1));
      expect(got.hasRefreshToken).toBe(true);
      expect((await runtime.db.prisma.oAuthToken.findFirstOrThrow({ where: { userId: userOf(1) } })).keyVersion).toBe(
        old + 1,
      );
      expect(await runtime.db.prisma.auditLog.count({ where: { eventType: "DECRYPT_FAILED" } })).toBe(0);
    } finally {
      await t.close();
    }
  }, 30_000);
});
