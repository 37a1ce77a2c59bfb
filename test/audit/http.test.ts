/** /v1/audit-logs routes through the real app on both databases, and the runtime's writer lifecycle. */
import { beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { asAdmin, installTestAdmin, startTestApp, testConfig, TEST_KEK } from "../support/app.ts";
import { createAccessServices } from "../../src/access/index.ts";
import { createApp, type App } from "../../src/app.ts";
import { createAuditWriter } from "../../src/audit/writer.ts";
import { createKeyService } from "../../src/keys/service.ts";
import { TokenRefresher } from "../../src/tokens/refresh.ts";
import { TokenVault } from "../../src/tokens/vault.ts";
import { verifyAuditLog } from "../../src/audit/verify.ts";
import { loadMasterPublicKeys } from "../../src/keys/repository.ts";
import { parseKek } from "../../src/crypto/kek.ts";
import { asSuperuser, quietLog, sampleEvent, storeMasterKey, testClock, testKey, testMacKey } from "./helpers.ts";

interface Item {
  id: string;
  timestamp: number;
  eventType: string;
  actor: string;
  seq: number;
  success: boolean;
}

interface Page {
  items: Item[];
  nextCursor: string | null;
}

interface Stats {
  total: number;
  byEventType: { ACCESS_GRANTED: number; ACCESS_DENIED: number; AUDIT_CHECKPOINT: number };
  bySuccess: { success: number; failure: number };
  chains: number;
}

interface ErrorBody {
  error: { code: string; message: string; requestId: string };
}

describeEachDb("audit HTTP routes", (h) => {
  let app: App;
  const clock = testClock(Date.UTC(2026, 0, 1));
  const t0 = clock.now();

  beforeAll(async () => {
    const key = await testKey();
    await storeMasterKey(h.db, key);
    const audit = createAuditWriter({ db: h.db, clock, log: quietLog, signer: key.signer, checkpointEvery: 20 });
    // 60 events over 30 distinct milliseconds: pairs share a timestamp, so paging must break ties by id.
    for (let i = 0; i < 60; i++) {
      if (i % 2 === 0) clock.advance(1000);
      await audit.record(sampleEvent(i));
    }
    await audit.close();
    const keys = await createKeyService({
      db: h.db,
      kek: parseKek(TEST_KEK),
      kekId: "test",
      sliceSeconds: 3600,
      log: quietLog,
    });
    // The admin key is installed without an audit row, so the counts below stay exact.
    await installTestAdmin(h.db);
    const config = testConfig();
    const access = await createAccessServices({
      config: { ...config, bootstrapAdminKey: undefined },
      db: h.db,
      audit,
      keys,
      clock,
      log: quietLog,
    });
    const refresher = new TokenRefresher({
      db: h.db,
      keys,
      audit,
      clock,
      log: quietLog,
      providers: {},
      timeoutMs: 1000,
    });
    const tokens = new TokenVault({ db: h.db, keys, audit, decider: access.decider, refresher, clock, log: quietLog });
    app = createApp({ config, db: h.db, log: quietLog, audit, keys, access, tokens });
  });

  const get = async <B = Page>(path: string) => {
    const res = await app.request(path, asAdmin());
    return { status: res.status, body: (await res.json()) as B };
  };

  test("list: cursor pages cover every row exactly once, newest first", async () => {
    const total = await h.db.prisma.auditLog.count();
    const seen: Item[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const { status, body }: { status: number; body: Page } = await get(
        `/v1/audit-logs?limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      );
      expect(status).toBe(200);
      expect(body.items.length).toBeLessThanOrEqual(7);
      seen.push(...body.items);
      cursor = body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(Math.ceil(total / 7));
    expect(seen).toHaveLength(total);
    expect(new Set(seen.map((i) => i.id)).size).toBe(total);
    for (let i = 1; i < seen.length; i++) {
      const a = seen[i - 1]!,
        b = seen[i]!;
      expect(a.timestamp > b.timestamp || (a.timestamp === b.timestamp && a.id > b.id)).toBe(true);
    }
    expect(typeof seen[0]!.seq).toBe("number");
    expect(typeof seen[0]!.timestamp).toBe("number");
  });

  test("list: filters by eventType, actor and time window (epoch ms or ISO-8601)", async () => {
    const denied = await get("/v1/audit-logs?eventType=ACCESS_DENIED&limit=500");
    expect(denied.body.items).toHaveLength(20);
    expect(denied.body.items.every((i: Item) => i.eventType === "ACCESS_DENIED")).toBe(true);

    const actor = await get("/v1/audit-logs?actor=requester-2&limit=500");
    expect(actor.body.items).toHaveLength(12);
    expect(actor.body.items.every((i: Item) => i.actor === "requester-2")).toBe(true);

    // Events i = 0..59 sit at t0 + 1000 * (floor(i / 2) + 1); [t0 + 5000, t0 + 10000) holds i = 8..17.
    const from = t0 + 5000,
      to = t0 + 10_000;
    const ms = await get(`/v1/audit-logs?from=${from}&to=${to}&eventType=ACCESS_GRANTED`);
    const iso = await get(
      `/v1/audit-logs?from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}&eventType=ACCESS_GRANTED`,
    );
    expect(ms.body.items.map((i: Item) => i.id)).toEqual(iso.body.items.map((i: Item) => i.id));
    expect(ms.body.items).toHaveLength(7); // i = 8..17 minus multiples of 3 (9, 12, 15)
    expect(ms.body.items.every((i: Item) => i.timestamp >= from && i.timestamp < to)).toBe(true);
  });

  test("stats: counts by event type and outcome, total, chains; with a window", async () => {
    const { status, body } = await get<Stats>("/v1/audit-logs/stats");
    expect(status).toBe(200);
    const cps = await h.db.prisma.auditLog.count({ where: { eventType: "AUDIT_CHECKPOINT" } });
    expect(body).toEqual({
      total: 60 + cps,
      byEventType: { ACCESS_GRANTED: 40, ACCESS_DENIED: 20, AUDIT_CHECKPOINT: cps },
      bySuccess: { success: 40 + cps, failure: 20 },
      chains: 1,
    });
    const windowed = await get<Stats>(`/v1/audit-logs/stats?from=${t0 + 5000}&to=${t0 + 10_000}`);
    expect(windowed.body.byEventType.ACCESS_GRANTED + windowed.body.byEventType.ACCESS_DENIED).toBe(10);
  });

  test("verify: valid log; a tampered one names the row", async () => {
    const ok = await get("/v1/audit-logs/verify");
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ valid: true, chains: 1, checked: await h.db.prisma.auditLog.count() });
    const victim = await h.db.prisma.auditLog.findFirstOrThrow({
      where: { eventType: "ACCESS_DENIED" },
      orderBy: { seq: "asc" },
    });
    await asSuperuser(h.db, `UPDATE "audit_logs" SET "success" = true WHERE "id" = $1::uuid`, [victim.id]);
    const bad = await get("/v1/audit-logs/verify");
    expect(bad.body).toMatchObject({
      valid: false,
      firstInvalid: { id: victim.id, seq: Number(victim.seq), chainId: victim.chainId },
    });
    await asSuperuser(h.db, `UPDATE "audit_logs" SET "success" = false WHERE "id" = $1::uuid`, [victim.id]);
  });

  test("bad queries → 400 in the single error shape", async () => {
    const bad = [
      "limit=0",
      "limit=501",
      "limit=ten",
      "eventType=NOT_A_TYPE",
      "from=yesterday",
      "to=2026-13-45T00:00:00Z",
      `from=${t0 + 10}&to=${t0}`,
      "cursor=not-a-cursor",
      `cursor=${Buffer.from(JSON.stringify([1, "x"])).toString("base64url")}`,
      "actor=",
      "unknown=1",
    ];
    for (const q of bad) {
      const { status, body } = await get<ErrorBody>(`/v1/audit-logs?${q}`);
      expect({ q, status }).toEqual({ q, status: 400 });
      expect(body.error.code).toBe("VALIDATION_FAILED");
      expect(typeof body.error.message).toBe("string");
      expect(typeof body.error.requestId).toBe("string");
    }
    expect((await get(`/v1/audit-logs/stats?from=${t0 + 10}&to=${t0}`)).status).toBe(400);
    expect((await get("/v1/audit-logs/stats?from=nope")).status).toBe(400);
    expect((await get("/v1/audit-logs/verify?x=1")).status).toBe(400);
  });

  test("the routes are in the OpenAPI document", async () => {
    const doc = app.getOpenAPI31Document({ openapi: "3.1.0", info: { title: "t", version: "1" } });
    expect(Object.keys(doc.paths ?? {})).toEqual(
      expect.arrayContaining(["/v1/audit-logs", "/v1/audit-logs/stats", "/v1/audit-logs/verify"]),
    );
  });
});

describeEachDb("audit writer in the runtime", (h) => {
  test("runtime.audit records, and runtime.close() appends the closing checkpoint before the database closes", async () => {
    await asSuperuser(h.db, `TRUNCATE "audit_logs"`);
    const t = await startTestApp(h.db);
    const receipt = await t.runtime.audit.record(sampleEvent(1));
    await t.close();
    const rows = await h.db.prisma.auditLog.findMany({ where: { chainId: receipt.chainId }, orderBy: { seq: "asc" } });
    // Start-up writes its own events first: the master key (KEY_GENERATED) and the bootstrap admin key.
    expect(rows.map((r) => r.eventType)).toEqual([
      "AUDIT_CHECKPOINT",
      "KEY_GENERATED",
      "API_KEY_CREATED",
      "ACCESS_GRANTED",
      "AUDIT_CHECKPOINT",
    ]);
    expect((rows[4]!.details as { kind: string }).kind).toBe("close");
    // Checkpoints are signed by the runtime's master key, so the chain verifies with the stored public keys.
    const report = await verifyAuditLog(h.db, { ...(await loadMasterPublicKeys(h.db, testMacKey)) });
    expect(report.valid).toBe(true);
  });
});
