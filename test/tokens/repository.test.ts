/**
 * The oauth_tokens repository: the hot read off Prisma returns exactly what Prisma returns, and
 * the embedded owner's row cache (src/tokens/row-cache.ts) is exact — a write by any statement of
 * this process, and a write by another process through the owner socket, is seen by the next read.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase, type Database } from "../../src/db/database.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { watchStatements } from "../../src/db/statement-watch.ts";
import type { TokenRow } from "../../src/tokens/record.ts";
import { tokenRepository } from "../../src/tokens/repository.ts";
import { TokenRowCache } from "../../src/tokens/row-cache.ts";
import { describeEachDb } from "../support/databases.ts";

async function insertRow(db: Database, userId: string, integration = "gmail") {
  return db.prisma.oAuthToken.create({
    data: {
      userId,
      integration,
      accessToken: `tok:1.access-${userId}`,
      refreshToken: null,
      keyVersion: 1,
      expiresAt: new Date(Date.UTC(2030, 0, 1)),
      scope: "mail.read",
      ipAddress: "127.0.0.1",
    },
  });
}

describeEachDb("token record repository", (h) => {
  test("the hot read returns the row exactly as Prisma maps it; a missing row is null", async () => {
    const created = await insertRow(h.db, "repo-exact");
    const repo = tokenRepository(h.db);
    const viaPrisma = await h.db.prisma.oAuthToken.findUnique({ where: { id: created.id } });
    expect(await repo.byKey({ userId: "repo-exact", integration: "gmail" })).toEqual(viaPrisma!);
    expect(await repo.fresh({ userId: "repo-exact", integration: "gmail" })).toEqual(viaPrisma!);
    expect(await repo.byKey({ userId: "nobody", integration: "gmail" })).toBeNull();
  });

  test("reads in one event-loop turn each get their own row: never a pair nobody asked for, odd keys included", async () => {
    // On PostgreSQL these go out as ONE statement with the pairs as two arrays; (turn-a, slack) and
    // (turn-b, gmail) exist, mix the asked users and integrations, and must reach no caller.
    const odd = 'we"ird\\one,}{NULL';
    for (const [u, i] of [
      ["turn-a", "gmail"],
      ["turn-a", "slack"],
      ["turn-b", "gmail"],
      ["turn-b", "slack"],
      [odd, "gmail"],
    ])
      await insertRow(h.db, u!, i);
    const repo = tokenRepository(h.db);
    const asked = [
      { userId: "turn-a", integration: "gmail" },
      { userId: "turn-b", integration: "slack" },
      { userId: "turn-c", integration: "gmail" },
      { userId: odd, integration: "gmail" },
      { userId: "turn-a", integration: "gmail" },
      { userId: "NULL", integration: "slack" },
    ];
    const rows = await Promise.all(asked.map((k) => repo.byKey(k)));
    expect(rows.map((r) => (r ? [r.userId, r.integration] : null))).toEqual([
      ["turn-a", "gmail"],
      ["turn-b", "slack"],
      null,
      [odd, "gmail"],
      ["turn-a", "gmail"],
      null,
    ]);
    // Alone in its turn, a read still finds its row.
    expect((await repo.byKey({ userId: "turn-b", integration: "gmail" }))?.userId).toBe("turn-b");
  });

  test("a write by any statement of this process is seen by the next read", async () => {
    await insertRow(h.db, "repo-write");
    const repo = tokenRepository(h.db);
    const key = { userId: "repo-write", integration: "gmail" };
    expect((await repo.byKey(key))?.scope).toBe("mail.read");
    await h.db.prisma.oAuthToken.updateMany({ where: { userId: key.userId }, data: { scope: "prisma" } });
    expect((await repo.byKey(key))?.scope).toBe("prisma");
    await h.db.prisma.$executeRaw`UPDATE oauth_tokens SET scope = 'raw' WHERE "userId" = ${key.userId}`;
    expect((await repo.byKey(key))?.scope).toBe("raw");
    await h.db.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`UPDATE oauth_tokens SET scope = 'in-tx' WHERE "userId" = ${key.userId}`;
    });
    expect((await repo.byKey(key))?.scope).toBe("in-tx");
    await h.db.prisma.oAuthToken.deleteMany({ where: { userId: key.userId } });
    expect(await repo.byKey(key)).toBeNull();
  });

  test("rows are cached only in the embedded owner; a hit runs no statement; lastUsed is written through", async () => {
    const created = await insertRow(h.db, "repo-cache");
    const repo = tokenRepository(h.db);
    const key = { userId: "repo-cache", integration: "gmail" };
    if (h.kind === "postgres") {
      expect(repo.cache).toBeUndefined();
      return;
    }
    const first = await repo.byKey(key);
    let statements = 0;
    const stop = watchStatements(h.db.pglite!, () => statements++);
    try {
      expect(await repo.byKey(key)).toBe(first);
      expect(statements).toBe(0);
      const at = new Date(Date.UTC(2026, 5, 1));
      await repo.flushLastUsed(new Map([[created.id, at]]));
      // The flush keeps the row cached, with the lastUsed the row now has: the next read is still a hit.
      statements = 0;
      const cached = await repo.byKey(key);
      expect(statements).toBe(0);
      expect(cached?.lastUsed?.getTime()).toBe(at.getTime());
      expect(cached).toEqual((await repo.fresh(key))!);
    } finally {
      stop();
    }
  });
});

describe("token row cache", () => {
  test("a row read before a write (a drop) is not put back after it; lastUsed never moves backwards", () => {
    const cache = new TokenRowCache();
    const row = { id: "r1", userId: "u", integration: "gmail", scope: "old", lastUsed: null } as unknown as TokenRow;
    const g = cache.generation(); // a read sends its SELECT …
    cache.forgetAll(); // … a write runs meanwhile …
    cache.fill(g, row); // … and the old row arrives afterwards: not cached
    expect(cache.get("u", "gmail")).toBeUndefined();
    cache.fill(cache.generation(), row);
    expect(cache.get("u", "gmail")).toBe(row);
    expect(Object.isFrozen(cache.get("u", "gmail"))).toBe(true);
    const later = new Date(2_000);
    cache.lastUsed(new Map([["r1", later]]));
    cache.lastUsed(new Map([["r1", new Date(1_000)]]));
    expect(cache.get("u", "gmail")?.lastUsed).toBe(later);
  });
});

describe("[pglite] token row cache on an on-disk database with its owner socket", () => {
  const dir = mkdtempSync(join(tmpdir(), "ckms-rowcache-"));
  let db: Database;
  beforeAll(async () => {
    db = await openDatabase({ kind: "pglite", dataDir: join(dir, "data") });
    await applyMigrations(db);
  }, 60_000);
  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a write by another process through the owner socket is seen by the next read", async () => {
    await insertRow(db, "socket-user");
    const repo = tokenRepository(db);
    const key = { userId: "socket-user", integration: "gmail" };
    expect(repo.cache).toBeDefined();
    expect((await repo.byKey(key))?.scope).toBe("mail.read");
    expect(await repo.byKey(key)).toBe(await repo.byKey(key)); // cached

    const script = join(dir, "write.ts");
    writeFileSync(
      script,
      `import { openDatabase } from ${JSON.stringify(join(import.meta.dir, "../../src/db/database.ts"))};
const db = await openDatabase({ kind: "pglite", dataDir: ${JSON.stringify(join(dir, "data"))} }, { throughOwner: true });
if (!db.owner) throw new Error("expected to work through the owner");
await db.prisma.$executeRaw\`UPDATE oauth_tokens SET scope = 'from-script' WHERE "userId" = 'socket-user'\`;
await db.close();`,
    );
    const child = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect((await repo.byKey(key))?.scope).toBe("from-script");
  }, 60_000);
});
