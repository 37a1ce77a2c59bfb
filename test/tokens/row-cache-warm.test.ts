/**
 * The embedded owner's token row cache loaded ahead of the reads (src/tokens/row-cache-warm.ts):
 * after the load a read runs no statement at all, and a load never installs a row a write changed
 * while its page was in flight (the same "nothing dropped since the SELECT was sent" rule as a
 * read's fill). On PostgreSQL there is no cache and the call does nothing.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Database } from "../../src/db/database.ts";
import { watchStatements } from "../../src/db/statement-watch.ts";
import type { TokenRow } from "../../src/tokens/record.ts";
import { tokenRepository } from "../../src/tokens/repository.ts";
import { TOKEN_ROW_CACHE_MAX_BYTES, TokenRowCache } from "../../src/tokens/row-cache.ts";
import { createTestDatabase, postgresAvailable, type TestDatabase } from "../support/databases.ts";

async function insertRows(db: Database, n: number, prefix: string): Promise<void> {
  await db.prisma.oAuthToken.createMany({
    data: Array.from({ length: n }, (_, i) => ({
      userId: `${prefix}-${i}`,
      integration: "gmail",
      accessToken: `tok:1.access-${prefix}-${i}`,
      keyVersion: 1,
      scope: "before",
    })),
  });
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await Bun.sleep(20);
  }
}

let open: TestDatabase | undefined;
let stop: (() => Promise<void>) | undefined;
async function opened(kind: "pglite" | "postgres"): Promise<TestDatabase> {
  open = await createTestDatabase(kind);
  return open;
}
afterEach(async () => {
  await stop?.();
  await open?.close();
  stop = undefined;
  open = undefined;
});

describe("[pglite] token row cache loaded at start", () => {
  test("every row (over several pages) is cached, and reads then run no SELECT", async () => {
    const db = await opened("pglite");
    await insertRows(db, 1_234, "warm");
    const repo = tokenRepository(db);
    stop = repo.warmCache();
    await until(() => repo.cache!.get("warm-1233", "gmail") !== undefined);
    const reads: string[] = [];
    const unwatch = watchStatements(db.pglite!, (sql) => void (sql?.includes("FROM oauth_tokens") && reads.push(sql)));
    try {
      for (const i of [0, 499, 500, 1_000, 1_233])
        expect((await repo.byKey({ userId: `warm-${i}`, integration: "gmail" }))?.accessToken).toBe(
          `tok:1.access-warm-${i}`,
        );
    } finally {
      unwatch();
    }
    expect(reads).toEqual([]);
  }, 60_000);

  test("a write while a page is in flight: the page is refused, and the reload after it holds the new row", async () => {
    const db = await opened("pglite");
    await insertRows(db, 20, "race");
    const repo = tokenRepository(db);
    const raced = () => {
      let write: Promise<unknown> | undefined;
      const unwatch = watchStatements(db.pglite!, (sql) => {
        if (!write && sql?.includes("ORDER BY id LIMIT"))
          write = db.prisma.$executeRawUnsafe(
            `UPDATE oauth_tokens SET scope = scope || '+' WHERE "userId" = 'race-7' RETURNING scope`,
          );
      });
      return {
        done: async () => {
          await until(() => write !== undefined);
          await write;
          unwatch();
        },
      };
    };
    const first = raced();
    stop = repo.warmCache();
    await first.done();
    // The reload runs once writes are quiet (about a second); every row it installs is current.
    await until(() => repo.cache!.get("race-0", "gmail") !== undefined);
    expect(repo.cache!.get("race-7", "gmail")?.scope).toBe("before+");
    expect((await repo.byKey({ userId: "race-7", integration: "gmail" }))?.scope).toBe("before+");
  }, 60_000);

  test("a page whose SELECT ran before a write that then completed is not installed", async () => {
    const db = await opened("pglite");
    await insertRows(db, 20, "late");
    const repo = tokenRepository(db);
    let write: Promise<unknown> | undefined;
    // The guard's catalog check runs between the page's SELECT and its fill: the write, queued
    // behind it, completes (both of its drops seen) before the page is offered to the cache.
    const unwatch = watchStatements(db.pglite!, (sql) => {
      if (!write && sql?.includes("pg_proc"))
        write = db.pglite!.query(`UPDATE oauth_tokens SET scope = 'after' WHERE "userId" = 'late-3'`);
    });
    try {
      stop = repo.warmCache();
      await until(() => write !== undefined);
      await write;
      await stop(); // waits for the load under way, and stops reloads
    } finally {
      unwatch();
    }
    expect(repo.cache!.get("late-3", "gmail")?.scope ?? "after").toBe("after");
    expect((await repo.byKey({ userId: "late-3", integration: "gmail" }))?.scope).toBe("after");
  }, 60_000);

  test("a lastUsed flush of more ids than one slice writes every row, and writes through to the loaded cache", async () => {
    const db = await opened("pglite");
    await insertRows(db, 600, "used");
    const repo = tokenRepository(db);
    stop = repo.warmCache();
    await until(() => repo.cache!.get("used-599", "gmail") !== undefined);
    const rows = await db.prisma.oAuthToken.findMany({ select: { id: true } });
    const at = new Date("2026-11-28T08:00:00.000Z");
    await repo.flushLastUsed(new Map(rows.map((r) => [r.id, at])));
    expect(await db.prisma.oAuthToken.count({ where: { lastUsed: at } })).toBe(600);
    for (const i of [0, 255, 256, 599]) expect(repo.cache!.get(`used-${i}`, "gmail")?.lastUsed).toEqual(at);
  }, 60_000);

  test("stopping waits for a load under way, and the database then closes cleanly", async () => {
    const db = await opened("pglite");
    await insertRows(db, 600, "stop");
    const halt = tokenRepository(db).warmCache();
    await halt();
    await db.close();
    open = undefined;
  }, 60_000);
});

describe("[pglite] token row cache load at shutdown", () => {
  test("stopping ends a load under way after its page in flight, not after every page", async () => {
    const db = await opened("pglite");
    await insertRows(db, 5_000, "halt");
    let pages = 0;
    watchStatements(db.pglite!, (sql) => {
      if (sql?.includes("ORDER BY id LIMIT")) pages++;
    });
    const halt = tokenRepository(db).warmCache();
    await until(() => pages >= 2); // announced before and after: the first page is under way
    const before = pages;
    await halt();
    // The page in flight (its "after") and at most one sent as stop() was called.
    expect(pages - before).toBeLessThanOrEqual(3);
    const cache = tokenRepository(db).cache!;
    const cached = Array.from({ length: 5_000 }, (_, i) => cache.get(`halt-${i}`, "gmail")).filter(Boolean).length;
    expect(cached).toBeLessThan(5_000);
  }, 60_000);
});

describe("token row cache pages (src/tokens/row-cache.ts)", () => {
  const row = (userId: string, accessToken = "x"): TokenRow =>
    ({ id: crypto.randomUUID(), userId, integration: "gmail", accessToken, lastUsed: null }) as unknown as TokenRow;

  test("a page read before a drop or a lastUsed write-through is refused whole", () => {
    const cache = new TokenRowCache();
    let g = cache.generation();
    cache.forgetAll();
    expect(cache.fillPage(g, [row("a")])).toBe(false);
    expect(cache.get("a", "gmail")).toBeUndefined();
    g = cache.generation();
    cache.lastUsed(new Map());
    expect(cache.fillPage(g, [row("b")])).toBe(false);
    expect(cache.get("b", "gmail")).toBeUndefined();
  });

  test("a load stops at the byte cap and evicts nothing", () => {
    const cache = new TokenRowCache();
    const big = "a".repeat(1024 * 1024);
    cache.fill(cache.generation(), row("first"));
    const n = TOKEN_ROW_CACHE_MAX_BYTES / big.length + 8;
    expect(
      cache.fillPage(
        cache.generation(),
        Array.from({ length: n }, (_, i) => row(`big-${i}`, big)),
      ),
    ).toBe(false);
    expect(cache.get("first", "gmail")).toBeDefined();
    expect(cache.get(`big-${n - 1}`, "gmail")).toBeUndefined();
  });
});

describe.if(postgresAvailable)("[postgres] token row cache load", () => {
  test("does nothing: there is no cache where other processes write the table", async () => {
    const db = await opened("postgres");
    const repo = tokenRepository(db);
    expect(repo.cache).toBeUndefined();
    stop = repo.warmCache();
  }, 60_000);
});
