/** tokens:cleanup: which records count as long expired, dry run vs real run, audit; and the script. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { cleanupExpiredTokens, parseAge } from "../../src/tokens/cleanup.ts";
import { createTestDatabase, describeEachDb, type TestDatabase, describeOnPostgres } from "../support/databases.ts";
import { runBun } from "../support/processes.ts";
import { auditRows, ManualClock, tokenTestApp, type TokenTestApp } from "./helpers.ts";

const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);
const DAY = 86_400_000;

test("parseAge", () => {
  expect(parseAge("30d")).toBe(30 * DAY);
  expect(parseAge("12h")).toBe(12 * 3_600_000);
  expect(parseAge("2w")).toBe(14 * DAY);
  for (const bad of ["30", "d", "-1d", "1y", "0d", " 3 d"]) expect(() => parseAge(bad)).toThrow(/older-than/);
});

async function seed(a: TokenTestApp) {
  const put = (userId: string, body: unknown) => a.call(a.writer, "PUT", `/v1/tokens/gmail/${userId}`, body);
  await put("old-dead", { accessToken: "x", expiresAt: T0 - 40 * DAY }); // removed
  await put("old-refreshable", { accessToken: "x", refreshToken: "r", expiresAt: T0 - 40 * DAY }); // kept: refresh token still usable
  await put("recent", { accessToken: "x", expiresAt: T0 - 10 * DAY }); // kept: not long enough
  await put("no-expiry", { accessToken: "x" }); // kept
  await put("old-reauth", { accessToken: "x", refreshToken: "r", expiresAt: T0 - 40 * DAY }); // removed once marked needs-reauth
}

describeEachDb("tokens cleanup", (h) => {
  let a: TokenTestApp;
  const clock = new ManualClock(T0);
  beforeAll(async () => {
    a = await tokenTestApp(h.db, { clock });
    await seed(a);
    await h.db.prisma.oAuthToken.updateMany({
      where: { userId: "old-reauth" },
      data: { refreshStatus: "needs-reauth" },
    });
  }, 60_000);
  afterAll(() => a?.close());

  test("dry run counts and changes nothing; the real run removes exactly those and is audited", async () => {
    const deps = { db: h.db, audit: a.t.runtime.audit, clock };
    const before = await auditRows(h.db, "TOKEN_DELETED");
    const dry = await cleanupExpiredTokens(deps, { olderThanMs: 30 * DAY, dryRun: true });
    expect(dry).toEqual({ dryRun: true, count: 2, cutoff: new Date(T0 - 30 * DAY).toISOString() });
    expect(await h.db.prisma.oAuthToken.count()).toBe(5);
    expect(await auditRows(h.db, "TOKEN_DELETED")).toHaveLength(before.length);

    const real = await cleanupExpiredTokens(deps, { olderThanMs: 30 * DAY, dryRun: false });
    expect(real.count).toBe(2);
    const left = (await h.db.prisma.oAuthToken.findMany({ select: { userId: true } })).map((r) => r.userId).sort();
    expect(left).toEqual(["no-expiry", "old-refreshable", "recent"]);
    const audit = (await auditRows(h.db, "TOKEN_DELETED")).slice(before.length);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: "system:tokens-cleanup", success: true });
    expect(audit[0]!.details).toMatchObject({ reason: "cleanup", count: 2, byIntegration: { gmail: 2 } });
    expect((await cleanupExpiredTokens(deps, { olderThanMs: 30 * DAY, dryRun: false })).count).toBe(0);
  });
});

describeOnPostgres("bun run tokens:cleanup", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase("postgres");
  });
  afterAll(() => db?.close());

  const run = async (...args: string[]) => {
    const r = await runBun(["scripts/tokens-cleanup.ts", ...args], { LOG_LEVEL: "warn", DATABASE_URL: db.url! });
    return { code: r.code, out: r.stdout.trim(), err: r.stderr.trim() };
  };

  test("--dry-run prints the count, the real run removes and audits, bad flags are one clear line", async () => {
    // Rows written directly: the script only looks at expiresAt, refreshToken and refreshStatus.
    const base = { integration: "github", accessToken: "ciphertext-placeholder", keyVersion: 1 };
    await db.prisma.oAuthToken.createMany({
      data: [
        { ...base, userId: "u-old", expiresAt: new Date(Date.now() - 40 * DAY) },
        { ...base, userId: "u-new", expiresAt: new Date(Date.now() - DAY) },
      ],
    });
    const dry = await run("--older-than", "30d", "--dry-run");
    expect(dry).toMatchObject({ code: 0, out: expect.stringMatching(/^dry run: 1 token record\(s\) expired before /) });
    expect(await db.prisma.oAuthToken.count()).toBe(2);
    const real = await run("--older-than", "30d");
    expect(real).toMatchObject({ code: 0, out: expect.stringMatching(/^removed 1 token record\(s\)/) });
    expect((await db.prisma.oAuthToken.findMany()).map((r) => r.userId)).toEqual(["u-new"]);
    expect(
      await db.prisma.auditLog.count({ where: { eventType: "TOKEN_DELETED", actor: "system:tokens-cleanup" } }),
    ).toBe(1);
    const bad = await run("--older-than", "soon");
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^error: --older-than must be/);
    expect((await run()).err).toMatch(/^error: --older-than is required/);
  }, 60_000);
});
