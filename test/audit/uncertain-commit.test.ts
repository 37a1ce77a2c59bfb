/**
 * The uncertain commit, on PostgreSQL: the writer's connection is cut after its batch statement was
 * sent, while the server still runs it (waiting on a lock), and the server then commits it. The
 * callers must get 503, the writer must move to a new chain, nobody may seal the old chain while
 * that statement can still land on it, and once it has landed and the backend is gone, the sweep
 * seals the old chain after the late rows and verification accepts the whole log. And the chain
 * lock (held by the writer's own connection) lost while a change batch (on the pool) is pending:
 * another process may seal the chain, and (chainId, seq) being unique keeps our batch off it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import pg from "pg";
import { openDatabase, type Database } from "../../src/db/database.ts";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../support/databases.ts";
import { ServiceUnavailableError } from "../../src/errors.ts";
import { verifyAuditLog } from "../../src/audit/verify.ts";
import { sealAbandonedChains } from "../../src/audit/seal.ts";
import { quietLog, sampleEvent, testClock, testKey, writerFor, type TestKey } from "./helpers.ts";

/** What another process's sweep does: seal every chain no live writer of its own holds. */
function sealAsAnotherProcess(db: Database, key: TestKey) {
  return sealAbandonedChains({
    db,
    clock: testClock(),
    log: quietLog,
    signer: key.signer,
    writeTimeoutMs: 2_000,
    live: new Set(),
  });
}

/** A TCP proxy to PostgreSQL whose client side can be cut per backend (by the backend's client_port). */
function proxyTo(port: number) {
  const byUpstreamPort = new Map<number, { client: net.Socket; upstream: net.Socket }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    upstream.on("connect", () => byUpstreamPort.set(upstream.localPort!, { client, upstream }));
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => {});
    upstream.on("error", () => {});
    client.on("close", () => upstream.end());
    upstream.on("close", () => client.destroy());
  });
  return {
    listen: () =>
      new Promise<number>((r) => server.listen(0, "127.0.0.1", () => r((server.address() as net.AddressInfo).port))),
    /** The client loses the connection; the backend keeps it (and whatever it is running) until `closeUpstream`. */
    cutClient(upstreamPort: number) {
      const c = byUpstreamPort.get(upstreamPort)!;
      c.upstream.unpipe(c.client);
      c.client.unpipe(c.upstream);
      c.client.removeAllListeners("close");
      c.client.destroy();
      return () => c.upstream.end();
    },
    close: () => server.close(),
  };
}

describeOnPostgres("audit writer: uncertain commit", () => {
  let db: TestDatabase;
  let viaProxy: Database;
  let proxy: ReturnType<typeof proxyTo>;
  let key: TestKey;
  let admin: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    key = await testKey();
    const url = new URL(db.url!);
    proxy = proxyTo(Number(url.port || 5432));
    url.port = String(await proxy.listen());
    url.hostname = "127.0.0.1";
    viaProxy = await openDatabase({ kind: "postgres", url: url.toString() });
    admin = new pg.Client({ connectionString: db.url });
    admin.on("error", () => {});
    await admin.connect();
  }, 60_000);
  afterAll(async () => {
    await admin?.end();
    await viaProxy?.close();
    proxy?.close();
    await db?.close();
  });

  test("cut after send, committed later: 503 to the caller, new chain, no seal while it may land, then sealed after it and valid", async () => {
    const w = writerFor(viaProxy, key, { writeTimeoutMs: 10_000 });
    const first = await w.record(sampleEvent(1, { target: "before" }));
    await admin.query("BEGIN");
    await admin.query(`LOCK TABLE "audit_logs" IN ACCESS EXCLUSIVE MODE`);
    const pending = w.record(sampleEvent(2, { target: "uncertain" })).then(
      () => undefined,
      (e: unknown) => e,
    );
    let port: number | undefined;
    for (let i = 0; i < 300 && port === undefined; i++) {
      const r = await admin.query<{ port: number }>(
        `SELECT client_port AS port FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
      );
      port = r.rows[0]?.port;
      if (port === undefined) await Bun.sleep(10);
    }
    expect(port).toBeDefined();
    const closeUpstream = proxy.cutClient(port!);
    expect(await pending).toBeInstanceOf(ServiceUnavailableError);
    // The statement is still queued on the server: it commits when the lock goes.
    await admin.query("ROLLBACK");
    for (let i = 0; i < 300; i++) {
      if ((await db.prisma.auditLog.count({ where: { target: "uncertain" } })) === 1) break;
      await Bun.sleep(10);
    }
    expect(await db.prisma.auditLog.count({ where: { target: "uncertain" } })).toBe(1);
    // The writer goes on, on a new chain.
    const next = await w.record(sampleEvent(3, { target: "after" }));
    expect(next.chainId).not.toBe(first.chainId);
    // The backend that wrote the late rows still holds the old chain's lock: not sealed yet.
    expect(await w.sealAbandonedChains()).not.toContain(first.chainId);
    closeUpstream();
    let sealed: string[] = [];
    for (let i = 0; i < 300 && !sealed.includes(first.chainId); i++) {
      sealed = await w.sealAbandonedChains();
      if (!sealed.includes(first.chainId)) await Bun.sleep(10);
    }
    expect(sealed).toContain(first.chainId);
    await w.close();
    const tail = await db.prisma.auditLog.findMany({ where: { chainId: first.chainId }, orderBy: { seq: "asc" } });
    expect(tail.map((r) => r.target)).toEqual([
      `chain:${first.chainId}`,
      "before",
      "uncertain",
      `chain:${first.chainId}`,
    ]);
    expect(await verifyAuditLog(db, { publicKeys: key.publicKeys })).toMatchObject({ valid: true, unclosedChains: 0 });
  }, 30_000);

  test("chain lock lost while a change batch waits on the pool: another process seals the chain, our batch cannot fork it (503, new chain)", async () => {
    const w = writerFor(db, key, { writeTimeoutMs: 10_000 });
    const first = await w.record(sampleEvent(1, { target: "before-change" }));
    await admin.query("BEGIN");
    await admin.query(`LOCK TABLE "requesters" IN EXCLUSIVE MODE`);
    const pending = w
      .apply({
        change: (tx) => tx.requester.create({ data: { requesterId: "lock-lost", name: "x" } }),
        event: (r) => ({
          eventType: "REQUESTER_CREATED",
          actor: "t",
          target: `requester:${r.requesterId}`,
          success: true,
        }),
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    for (let i = 0; i < 300; i++) {
      const r = await admin.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
      );
      if (r.rowCount) break;
      await Bun.sleep(10);
    }
    // The writer's own connection (the one holding the chain lock) dies while the change waits.
    const holder = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND pid <> pg_backend_pid()
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    expect(holder.rowCount).toBe(1);
    await admin.query("SELECT pg_terminate_backend($1)", [holder.rows[0]!.pid]);
    // Another process sees the chain abandoned and seals it, while our change batch is still pending.
    let sealed: string[] = [];
    for (let i = 0; i < 300 && !sealed.includes(first.chainId); i++) {
      const rows = await sealAsAnotherProcess(db, key);
      sealed = rows.map((r) => r.chainId);
      if (!sealed.includes(first.chainId)) await Bun.sleep(10);
    }
    expect(sealed).toContain(first.chainId);
    await admin.query("ROLLBACK");
    expect(await pending).toBeInstanceOf(ServiceUnavailableError);
    expect(await db.prisma.requester.count({ where: { requesterId: "lock-lost" } })).toBe(0);
    const next = await w.record(sampleEvent(2, { target: "after-change" }));
    expect(next.chainId).not.toBe(first.chainId);
    await w.close();
    const tail = await db.prisma.auditLog.findMany({ where: { chainId: first.chainId }, orderBy: { seq: "asc" } });
    expect(tail.map((r) => r.target)).toEqual([`chain:${first.chainId}`, "before-change", `chain:${first.chainId}`]);
    expect(await verifyAuditLog(db, { publicKeys: key.publicKeys })).toMatchObject({ valid: true });
  }, 30_000);
});

describe("[pglite] audit writer: uncertain commit", () => {
  let db: TestDatabase;
  let key: TestKey;
  beforeAll(async () => {
    db = await createTestDatabase("pglite");
    key = await testKey();
  }, 60_000);
  afterAll(async () => {
    await db?.close();
  });

  test("the database busy past the write deadline, the batch committed after it: 503, new chain, sealed after the late row, valid", async () => {
    // Client deadline 1,020 ms. No timer (tickMs 0): the test seals the abandoned chain itself.
    const w = writerFor(db, key, { writeTimeoutMs: 10, tickMs: 0 });
    const first = await w.record(sampleEvent(1, { target: "before" }));
    // A transaction keeps the one embedded session for longer than the deadline.
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let started!: () => void;
    const inside = new Promise<void>((r) => {
      started = r;
    });
    const busy = db.prisma.$transaction(
      async (tx) => {
        await tx.$queryRaw`SELECT 1`;
        started();
        await held;
      },
      { timeout: 30_000 },
    );
    await inside;
    const error = await w.record(sampleEvent(2, { target: "late" })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    release();
    await busy;
    const next = await w.record(sampleEvent(3, { target: "after" }));
    expect(next.chainId).not.toBe(first.chainId);
    // The late statement ran before anything queued after it: it is on the old chain, and the seal follows it.
    expect(await db.prisma.auditLog.count({ where: { target: "late" } })).toBe(1);
    await w.close();
    // Sealed with a realistic timeout: the writer's own sweep runs its transaction under this test's
    // 10 ms write timeout, which a loaded machine exceeds (the seal is then logged and retried later).
    const sealed = await sealAsAnotherProcess(db, key);
    expect(sealed.map((r) => r.chainId)).toContain(first.chainId);
    const tail = await db.prisma.auditLog.findMany({ where: { chainId: first.chainId }, orderBy: { seq: "asc" } });
    expect(tail.map((r) => r.target)).toEqual([`chain:${first.chainId}`, "before", "late", `chain:${first.chainId}`]);
    expect(await verifyAuditLog(db, { publicKeys: key.publicKeys })).toMatchObject({ valid: true, unclosedChains: 0 });
  }, 30_000);
});
