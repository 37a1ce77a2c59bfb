/**
 * Fail closed on a real PostgreSQL: with the audit table locked past the write timeout, or the
 * writing connection killed mid-transaction, the caller gets 503 in the single error shape, no
 * key material, and neither an access_requests row nor a decision row exists for the request.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import pg from "pg";
import { describePostgres } from "../support/databases.ts";
import { accessHarness, bearer, type AccessHarness } from "./support.ts";
import { sliceIndex } from "../../src/crypto/slice-keys.ts";

const HOUR = 3_600_000;

describePostgres("fail closed when the decision cannot be made durable", (h) => {
  let x: AccessHarness;
  let reader: string;
  let locker: pg.Client;
  let e: number;
  beforeAll(async () => {
    x = await accessHarness(h.db, { listen: true, env: { AUDIT_WRITE_TIMEOUT_MS: "300" } });
    const r = await x.makeKey(["reader"]);
    reader = r.apiKey;
    await x.access.policies.create({ name: "all", type: "whitelist", config: { requesters: [r.requesterId] } }, "test");
    e = sliceIndex(x.clock.now(), 3600);
    locker = new pg.Client({ connectionString: h.db.url });
    // The suite's database is dropped WITH (FORCE) when it ends, which may kill this connection first.
    locker.on("error", () => {});
    await locker.connect();
  });
  afterAll(async () => {
    await locker?.end();
    await x?.close();
  });

  const ask = () =>
    fetch(
      `${x.url}/v1/access-requests`,
      bearer(reader, {
        method: "POST",
        body: JSON.stringify({
          resource: { type: "timeslice" },
          timeRange: { start: (e - 2) * HOUR, end: (e - 1) * HOUR },
        }),
      }),
    );
  const counts = async () => ({
    requests: await h.db.prisma.accessRequest.count(),
    decisions: await h.db.prisma.auditLog.count({ where: { eventType: { in: ["ACCESS_GRANTED", "ACCESS_DENIED"] } } }),
  });
  const expect503 = async (res: Response) => {
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({
      error: { code: "SERVICE_UNAVAILABLE", message: expect.any(String), requestId: expect.any(String) },
    });
    expect(text).not.toMatch(/keys|seeds|privateJwk|encrypted/);
  };

  // The grant's key material is derived while its decision is being written (access-requests.ts),
  // so here it is ready long before the write fails: it must still not be released.
  test("audit table locked past the write timeout → 503, nothing half written", async () => {
    expect((await ask()).status).toBe(201); // warm: key verified and cached
    const before = await counts();
    await locker.query("BEGIN");
    await locker.query("LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE");
    try {
      await expect503(await ask());
    } finally {
      await locker.query("ROLLBACK");
    }
    expect(await counts()).toEqual(before);
    expect((await ask()).status).toBe(201); // and it recovers
  }, 20_000);

  test("the writing connection killed mid-transaction → 503, nothing half written", async () => {
    await x.close();
    // A long timeout, so it is the killed connection (not the timeout) that fails the write.
    x = await accessHarness(h.db, { listen: true, env: { AUDIT_WRITE_TIMEOUT_MS: "20000" } });
    const r = await x.makeKey(["reader"]);
    reader = r.apiKey;
    await x.access.policies.update(
      (await x.access.policies.list())[0]!.id,
      { config: { requesters: [r.requesterId] } },
      "test",
    );
    expect((await ask()).status).toBe(201);
    const before = await counts();
    await locker.query("BEGIN");
    await locker.query("LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE");
    const pending = ask();
    try {
      // Wait until the writer's transaction is blocked on our lock, then kill that backend.
      let killed = 0;
      for (let i = 0; i < 200 && killed === 0; i++) {
        await Bun.sleep(20);
        const res = await locker.query(
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`,
        );
        killed = res.rowCount ?? 0;
      }
      expect(killed).toBeGreaterThan(0);
      await expect503(await pending);
    } finally {
      await locker.query("ROLLBACK");
    }
    expect(await counts()).toEqual(before);
    expect((await ask()).status).toBe(201);
  }, 30_000);
});
