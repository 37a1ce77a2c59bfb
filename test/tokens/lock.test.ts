/** Single-flight and the cross-process advisory lock behind token refreshes. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { openDatabase, type Database } from "../../src/db/database.ts";
import { advisoryKey, createRefreshLock, LockTimeoutError, SingleFlight } from "../../src/tokens/lock.ts";
import { createTestDatabase, type TestDatabase, describeOnPostgres } from "../support/databases.ts";

test("single-flight: concurrent callers share one run; the next call after it settles runs again", async () => {
  const sf = new SingleFlight<number>();
  let runs = 0;
  const fn = async () => {
    runs++;
    await Bun.sleep(20);
    return runs;
  };
  const results = await Promise.all(Array.from({ length: 50 }, () => sf.run("k", fn)));
  expect(runs).toBe(1);
  expect(new Set(results)).toEqual(new Set([1]));
  expect(await sf.run("k", fn)).toBe(2);
  expect(sf.size).toBe(0);
});

test("advisory keys are stable signed 64-bit values that differ per token", () => {
  const a = advisoryKey("oauth-refresh:gmail:u1");
  expect(a).toBe(advisoryKey("oauth-refresh:gmail:u1"));
  expect(a).not.toBe(advisoryKey("oauth-refresh:gmail:u2"));
  expect(a >= -(2n ** 63n) && a < 2n ** 63n).toBe(true);
});

describeOnPostgres("advisory lock across two connection pools (two processes' worth)", () => {
  let db: TestDatabase;
  let other: Database;
  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    other = await openDatabase({ kind: "postgres", url: db.url!, poolSize: 4 });
  });
  afterAll(async () => {
    await other?.close();
    await db?.close();
  });

  test("excludes a holder in the other pool, bounds the wait, and leaves pool sessions clean", async () => {
    const a = createRefreshLock(db);
    const b = createRefreshLock(other);
    const order: string[] = [];
    let releaseA!: () => void;
    const aHeld = new Promise<void>((r) => (releaseA = r));
    let aStarted!: () => void;
    const aIn = new Promise<void>((r) => (aStarted = r));
    const first = a.withLock("t", 5000, async () => {
      order.push("a-in");
      aStarted();
      await aHeld;
      order.push("a-out");
    });
    await aIn;
    // A short wait while A holds it: a clean timeout.
    await expect(b.withLock("t", 200, async () => order.push("never"))).rejects.toBeInstanceOf(LockTimeoutError);
    const second = b.withLock("t", 5000, async () => void order.push("b-in"));
    await Bun.sleep(100);
    releaseA();
    await Promise.all([first, second]);
    expect(order).toEqual(["a-in", "a-out", "b-in"]);
    // lock_timeout was reset before the connections went back to the pools Prisma uses.
    for (const d of [db, other]) {
      const rows = await d.prisma.$queryRaw<Array<{ lock_timeout: string }>>`SHOW lock_timeout`;
      expect(rows[0]?.lock_timeout).toBe("0");
    }
  }, 20_000);

  test("an error inside the critical section releases the lock", async () => {
    const a = createRefreshLock(db);
    await expect(
      a.withLock("t2", 1000, async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await createRefreshLock(other).withLock("t2", 500, async () => "got it")).toBe("got it");
  });
});
