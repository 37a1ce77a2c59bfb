/**
 * The owner socket's one hard promise: PGlite has one session, yet the owner's statements never
 * land inside a socket client's transaction, nor a client's inside the owner's, and a client that
 * vanishes mid-transaction is rolled back and releases the owner.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { openDatabase, type Database } from "../../src/db/database.ts";
import { OWNER_SOCKET_PORT, ownerSocketDir } from "../../src/db/owner-socket.ts";

const dir = mkdtempSync(join(tmpdir(), "ckms-owner-"));
const dataDir = join(dir, "pglite");
let owner: Database;

beforeAll(async () => {
  owner = await openDatabase({ kind: "pglite", dataDir });
  await owner.pglite!.exec("CREATE TABLE t (x int)");
});
afterAll(async () => {
  await owner.close();
  rmSync(dir, { recursive: true, force: true });
});

const client = async () => {
  const c = new pg.Client({
    host: ownerSocketDir(dataDir),
    port: OWNER_SOCKET_PORT,
    user: "postgres",
    database: "postgres",
  });
  c.on("error", () => {});
  await c.connect();
  return c;
};
const rows = async () => (await owner.pglite!.query<{ x: number }>("SELECT x FROM t ORDER BY x")).rows.map((r) => r.x);
const settled = (p: Promise<unknown>) => {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return () => done;
};

test("the owner's statement waits for a client's transaction, and is not rolled back with it", async () => {
  const c = await client();
  await c.query("BEGIN");
  await c.query("INSERT INTO t VALUES (1)");
  const ownerInsert = owner.prisma.$executeRawUnsafe("INSERT INTO t VALUES (2)");
  const done = settled(ownerInsert);
  await Bun.sleep(300);
  expect(done()).toBe(false);
  await c.query("ROLLBACK");
  await ownerInsert;
  expect(await rows()).toEqual([2]);
  await c.end();
});

test("a client's statement waits for the owner's transaction, and is not rolled back with it", async () => {
  const c = await client();
  let clientInsert: Promise<unknown> | undefined;
  let done = () => false;
  await owner.prisma
    .$transaction(async (tx) => {
      await tx.$executeRawUnsafe("INSERT INTO t VALUES (3)");
      clientInsert = c.query("INSERT INTO t VALUES (4)");
      done = settled(clientInsert);
      await Bun.sleep(300);
      expect(done()).toBe(false);
      throw new Error("roll back");
    })
    .catch(() => {});
  await clientInsert;
  expect(await rows()).toEqual([2, 4]);
  // Extended-protocol queries with parameters interleave too.
  const [a, b] = await Promise.all([
    c.query("SELECT $1::int + 1 AS n", [41]),
    owner.prisma.$queryRawUnsafe<{ n: number }[]>("SELECT $1::int + 2 AS n", 40),
  ]);
  expect([a.rows[0].n, b[0]!.n]).toEqual([42, 42]);
  await c.end();
});

test("a client that disappears mid-transaction is rolled back and the owner goes on", async () => {
  const c = await client();
  await c.query("BEGIN");
  await c.query("INSERT INTO t VALUES (5)");
  const ownerInsert = owner.prisma.$executeRawUnsafe("INSERT INTO t VALUES (6)");
  await Bun.sleep(100);
  (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  await ownerInsert;
  expect(await rows()).toEqual([2, 4, 6]);
  expect(owner.pglite!.isInTransaction()).toBe(false);
});

test("a second process-like opener goes through the owner only when asked to", async () => {
  // Same process, so the lock names us: a live foreign holder is simulated by the lock file's pid.
  const { writeFileSync, readFileSync } = await import("node:fs");
  const lock = `${dataDir}.lock`;
  const mine = readFileSync(lock, "utf8");
  const other = Bun.spawn(["sleep", "30"]);
  writeFileSync(lock, String(other.pid));
  try {
    await expect(openDatabase({ kind: "pglite", dataDir })).rejects.toThrow(`is in use by process ${other.pid}`);
    const via = await openDatabase({ kind: "pglite", dataDir }, { throughOwner: true });
    expect(via.owner).toEqual({ pid: other.pid });
    expect(await via.prisma.$queryRawUnsafe<{ n: bigint }[]>("SELECT count(*) AS n FROM t")).toEqual([{ n: 3n }]);
    await via.close();
  } finally {
    writeFileSync(lock, mine);
    other.kill();
    await other.exited;
  }
});
