/**
 * Two service processes on one PostgreSQL, started at the same moment on a fresh database: each
 * migration is applied once, both bootstrap and serve; under a mixed load on both, a policy change
 * made through process A shows in process B's decisions within 1 s (measured both ways: a grant
 * appearing and disappearing), so does an API key revoked or a requester disabled through A (B
 * refuses the key it had cached), and 60 concurrent reads of an expiring token split across the two
 * make exactly one upstream refresh.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { migrationsDir } from "../src/db/migration-files.ts";
import { TEST_ADMIN_KEY } from "../test/support/app.ts";
import { createEmptyPostgresDatabase, describeOnPostgres } from "../test/support/databases.ts";
import { fakeGoogleEnv, startFakeOAuth, type FakeOAuth } from "../test/support/fake-oauth.ts";
import { callApi } from "../test/tokens/helpers.ts";
import { prepareLoad, runLoad } from "./load.ts";
import { envInt, figure, percentile, verifyAudit } from "./support.ts";
import { startService, waitReady, type ServiceProcess } from "../test/support/processes.ts";
import { openDatabase, type Database } from "../src/db/database.ts";

const PROBES = envInt("RELIABILITY_POLICY_PROBES", 5);
const READS = 60;

describeOnPostgres("two service processes on one database", () => {
  let pgdb: { url: string; drop(): Promise<void> };
  let fake: FakeOAuth;
  let a: ServiceProcess;
  let b: ServiceProcess;
  let db: Database;

  beforeAll(async () => {
    pgdb = await createEmptyPostgresDatabase();
    fake = startFakeOAuth({ behaviour: { kind: "ok", delayMs: 300 } });
    const env = {
      ...fakeGoogleEnv(fake),
      REFRESH_TIMEOUT_MS: "5000",
    };
    // Same moment, fresh database: both race to migrate, create the master key and bootstrap the admin.
    [a, b] = await Promise.all([
      startService(pgdb.url, { env, wait: false }),
      startService(pgdb.url, { env, wait: false }),
    ]);
    await Promise.all([waitReady(a, 60_000), waitReady(b, 60_000)]);
    db = await openDatabase({ kind: "postgres", url: pgdb.url });
  }, 90_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await db?.close();
    await fake?.stop();
    await pgdb?.drop();
  });

  test("no duplicate migration, policy change visible across processes within 1 s, exactly one refresh, under load", async () => {
    // Migrations: every one recorded once, finished, none rolled back.
    const dirs = readdirSync(migrationsDir).filter((d) => statSync(join(migrationsDir, d)).isDirectory());
    const rows = await db.prisma.$queryRawUnsafe<
      Array<{ migration_name: string; finished_at: Date | null; rolled_back_at: Date | null }>
    >(`SELECT migration_name, finished_at, rolled_back_at FROM _prisma_migrations`);
    const names = rows.map((r) => r.migration_name).sort();
    const masterKeys = await db.prisma.masterKey.count();
    const admins = await db.prisma.requester.count({ where: { requesterId: "bootstrap-admin" } });

    const keys = await prepareLoad(a.url, TEST_ADMIN_KEY);
    const load = runLoad([a.url, b.url], keys, { workers: 6 });
    await Bun.sleep(1_000);

    // Policy propagation: a probe requester no policy admits; a whitelist for it is created through
    // A and deleted again through A, and B's decisions are polled until they follow.
    const probe = (await (
      await callApi(a.url, TEST_ADMIN_KEY, "POST", "/v1/requesters", { requesterId: "probe", name: "probe" })
    ).json()) as { id: string };
    const probeKey = (
      (await (
        await callApi(a.url, TEST_ADMIN_KEY, "POST", `/v1/requesters/${probe.id}/api-keys`, { roles: ["reader"] })
      ).json()) as { apiKey: string }
    ).apiKey;
    const ask = async () =>
      (
        await callApi(b.url, probeKey, "POST", "/v1/access-requests", {
          resource: { type: "timeslice" },
          timeRange: { start: Date.now() - 7_200_000, end: Date.now() - 3_600_000 },
        })
      ).status;
    expect(await ask()).toBe(403);
    const lags: number[] = [];
    for (let i = 0; i < PROBES; i++) {
      const created = await callApi(a.url, TEST_ADMIN_KEY, "POST", "/v1/policies", {
        name: `probe-${i}`,
        type: "whitelist",
        config: { requesters: ["probe"] },
      });
      const changedAt = performance.now();
      const policy = (await created.json()) as { id: string };
      expect(created.status).toBe(201);
      while ((await ask()) !== 201 && performance.now() - changedAt < 5_000) await Bun.sleep(10);
      lags.push(performance.now() - changedAt);
      const deleted = await callApi(a.url, TEST_ADMIN_KEY, "DELETE", `/v1/policies/${policy.id}`);
      const deletedAt = performance.now();
      expect(deleted.status).toBe(204);
      while ((await ask()) !== 403 && performance.now() - deletedAt < 5_000) await Bun.sleep(10);
      lags.push(performance.now() - deletedAt);
    }

    // Revocation and disabling: a key B has just verified (so it is in B's 5 s cache) is revoked,
    // or its requester disabled, through A; B must refuse it within 1 s (NOTIFY), not 5 s (TTL).
    const revocationLags: number[] = [];
    for (let i = 0; i < PROBES; i++) {
      for (const how of ["revoke", "disable"] as const) {
        const r = (await (
          await callApi(a.url, TEST_ADMIN_KEY, "POST", "/v1/requesters", {
            requesterId: `gone-${how}-${i}`,
            name: "gone",
          })
        ).json()) as { id: string };
        const k = (await (
          await callApi(a.url, TEST_ADMIN_KEY, "POST", `/v1/requesters/${r.id}/api-keys`, { roles: ["admin"] })
        ).json()) as { apiKey: string; keyId: string };
        expect((await callApi(b.url, k.apiKey, "GET", "/v1/policies")).status).toBe(200);
        const change =
          how === "revoke"
            ? await callApi(a.url, TEST_ADMIN_KEY, "DELETE", `/v1/requesters/${r.id}/api-keys/${k.keyId}`)
            : await callApi(a.url, TEST_ADMIN_KEY, "PATCH", `/v1/requesters/${r.id}`, { enabled: false });
        const changedAt = performance.now();
        expect(change.status).toBeLessThan(300);
        while (
          (await callApi(b.url, k.apiKey, "GET", "/v1/policies")).status !== 401 &&
          performance.now() - changedAt < 6_000
        )
          await Bun.sleep(10);
        revocationLags.push(performance.now() - changedAt);
      }
    }

    // Exactly-one refresh: a token expiring within the refresh window, read 60 times at once
    // through both processes while the load runs.
    const put = await callApi(a.url, keys.writer, "PUT", "/v1/tokens/gmail/herd", {
      accessToken: "herd-old",
      refreshToken: "herd-refresh",
      expiresAt: Date.now() + 60_000,
    });
    expect(put.status).toBe(201);
    const reads = await Promise.all(
      Array.from({ length: READS }, (_, i) =>
        callApi(i % 2 ? b.url : a.url, keys.reader, "GET", "/v1/tokens/gmail/herd"),
      ),
    );
    const bodies = (await Promise.all(reads.map((r) => r.json()))) as Array<{ accessToken?: string }>;
    const stats = await load.stop();
    const v = await verifyAudit(db);

    const sorted = [...lags].sort((x, y) => x - y);
    const max = sorted[sorted.length - 1] ?? 0;
    const revSorted = [...revocationLags].sort((x, y) => x - y);
    const revMax = revSorted[revSorted.length - 1] ?? 0;
    figure(
      `two processes: fresh database, ${dirs.length} migration(s) recorded ${names.length}× (${masterKeys} master key, ${admins} bootstrap admin); ` +
        `policy change A→B visible in p50 ${percentile(sorted, 50).toFixed(0)} ms, max ${max.toFixed(0)} ms over ${lags.length} changes; ` +
        `API key revoked / requester disabled on A refused by B in p50 ${percentile(revSorted, 50).toFixed(0)} ms, max ${revMax.toFixed(0)} ms over ${revocationLags.length} changes; ` +
        `${READS} concurrent reads of an expiring token → ${fake.calls.length} upstream refresh; load ${stats.total} responses, ${stats.wrong.length} wrong; audit ${v.valid ? "valid" : "INVALID"}`,
    );
    if (stats.wrong.length) console.log(`  wrong: ${[...new Set(stats.wrong)].slice(0, 10).join("\n  ")}`);

    expect(names).toEqual(dirs.sort());
    expect(rows.every((r) => r.finished_at !== null && r.rolled_back_at === null)).toBe(true);
    expect(masterKeys).toBe(1);
    expect(admins).toBe(1);
    expect(max).toBeLessThan(1_000);
    expect(revMax).toBeLessThan(1_000);
    expect(reads.map((r) => r.status)).toEqual(Array(READS).fill(200));
    expect(fake.calls).toHaveLength(1);
    expect(new Set(bodies.map((x) => x.accessToken))).toEqual(new Set([fake.issued[0]!]));
    expect(stats.wrong).toEqual([]);
    expect(stats.unavailable).toBe(0);
    expect(v.valid).toBe(true);
    // Both processes stayed up.
    expect(a.proc.exitCode).toBeNull();
    expect(b.proc.exitCode).toBeNull();
  }, 120_000);
});
