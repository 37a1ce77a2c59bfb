/**
 * Opens the one database a process uses: PostgreSQL through `@prisma/adapter-pg`, or embedded
 * PGlite (on disk under DATA_DIR, or in memory for tests). Both are reached through the same
 * Prisma client, so nothing above this module knows which one it got.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { ConfigError } from "../errors.ts";
import { resolve } from "node:path";
import pg from "pg";
import { PGlite } from "@electric-sql/pglite";
import { makePrivateDir, restrictTree, withPrivateUmask } from "./private-dir.ts";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import type { SqlMigrationAwareDriverAdapterFactory } from "@prisma/driver-adapter-utils";
import { PrismaClient } from "./generated/client.ts";
import { NativeReader } from "./native-reader.ts";
import { OWNER_SOCKET_PORT, ownerSocketDir, ownerSocketReady, serveOwnerSocket } from "./owner-socket.ts";

export type DatabaseTarget =
  | { kind: "postgres"; url: string; poolSize?: number }
  | { kind: "pglite"; dataDir: string | null };

export interface Database {
  readonly kind: "postgres" | "pglite";
  readonly prisma: PrismaClient;
  /** A fresh adapter factory for the schema engine (migrations). */
  migrationAdapter(): SqlMigrationAwareDriverAdapterFactory;
  /** Present on PostgreSQL: the pool Prisma queries through, for advisory locks and LISTEN. */
  readonly pool?: pg.Pool;
  /** PostgreSQL, when the URL allows: Bun's native client for the request path's point reads (rawSelect). */
  readonly reader?: NativeReader;
  readonly pglite?: PGlite;
  /** Where it lives, for logs (never includes a password). */
  readonly description: string;
  /** Set when this process reaches the embedded database through the process that owns it (src/db/owner-socket.ts). */
  readonly owner?: { pid: number };
  /**
   * Embedded database only: whether another process may be writing to it right now (this process
   * owns it and a script is connected to its socket, or this process is such a script). PGlite's
   * one backend serves every session, so advisory locks cannot tell those processes' chains apart.
   */
  othersAttached?(): boolean;
  close(): Promise<void>;
}

export interface OpenOptions {
  /**
   * On the embedded database, when another live process owns the data directory: work through
   * that owner's socket (maintenance scripts) instead of refusing (a second service).
   */
  throughOwner?: boolean;
}

export async function openDatabase(target: DatabaseTarget, opts: OpenOptions = {}): Promise<Database> {
  return target.kind === "postgres"
    ? openPostgres(target.url, target.poolSize ?? 10)
    : openPglite(target.dataDir, opts.throughOwner ?? false);
}

function openPostgres(url: string, poolSize: number): Database {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 5_000 });
  // A client that loses its server (restart, pg_terminate_backend, failover) emits 'error'. The
  // pool listens only while a client is idle; a checked-out client between two queries of a
  // transaction has no listener, and an unhandled 'error' event would crash the process. The
  // query in flight (or the next one) fails on its own and the pool replaces the client, so a
  // permanent listener on every client only has to keep the event from being fatal.
  pool.on("error", () => {});
  pool.on("connect", (client) => {
    client.on("error", () => {});
    coalesceWrites(client);
  });
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const reader = NativeReader.forUrl(url, poolSize);
  let closed = false;
  return {
    kind: "postgres",
    prisma,
    pool,
    ...(reader ? { reader } : {}),
    description: redactUrl(url),
    migrationAdapter: () => wholeScriptAdapter(new PrismaPg({ connectionString: url, max: 2 })),
    async close() {
      if (closed) return;
      closed = true;
      await reader?.close();
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

async function openPglite(dataDir: string | null, throughOwner: boolean): Promise<Database> {
  let pglite: PGlite;
  if (dataDir === null) {
    pglite = new PGlite();
  } else {
    const dir = resolve(dataDir);
    // Data directory 0700, files 0600 (SPEC §12); an existing, looser tree is fixed here.
    makePrivateDir(dir);
    const lock = lockDataDir(dir);
    if ("owner" in lock) {
      // Another live process owns it: a script works through that owner's socket; a service refuses.
      if (throughOwner) return connectToOwner(dir, lock.owner);
      throw new ConfigError(
        `the embedded database at ${dir} is in use by process ${lock.owner}; stop it first (or use DATABASE_URL=postgres://… to run several processes; maintenance scripts work through it)`,
      );
    }
    const unlock = lock.unlock;
    try {
      restrictTree(dir);
      pglite = await withPrivateUmask(async () => {
        const p = new PGlite(dir);
        await p.waitReady;
        return p;
      });
      restrictTree(dir);
    } catch (err) {
      unlock();
      throw err;
    }
    // Serving the maintenance scripts is not worth refusing to start over (e.g. a DATA_DIR path
    // too long for a Unix socket): say so; scripts then refuse while this process runs.
    const socket = await serveOwnerSocket(pglite, dir).catch((err: Error) => {
      console.error(
        `chronokms: warning: cannot serve the embedded database to maintenance scripts (${err.message}); stop the service to run them`,
      );
      return undefined;
    });
    const db = wrapPglite(pglite, `pglite at ${dir}`);
    const close = db.close;
    return {
      ...db,
      othersAttached: () => (socket?.clientCount() ?? 0) > 0,
      close: async () => {
        await socket?.close();
        await close();
        restrictTree(dir);
        unlock();
      },
    };
  }
  await pglite.waitReady;
  return wrapPglite(pglite, "pglite (in memory)");
}

/**
 * PGlite is a single-process database: a second process opening the same directory would corrupt
 * it. A pid file next to it names the owner (a stale one, whose process is gone, is taken over);
 * other processes then go through the owner's socket.
 */
function lockDataDir(dir: string): { unlock: () => void } | { owner: number } {
  const lockPath = `${dir}.lock`;
  const take = () => writeFileSync(lockPath, String(process.pid), { flag: "wx", mode: 0o600 });
  try {
    take();
  } catch {
    const holder = Number(readFileSync(lockPath, "utf8").trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder))
      return { owner: holder };
    rmSync(lockPath, { force: true });
    take();
  }
  return { unlock: () => rmSync(lockPath, { force: true }) };
}

/**
 * The embedded database through its running owner: the pg driver on the owner's Unix socket, one
 * connection (the owner's PGlite runs one statement at a time anyway). Migrations are the owner's.
 */
async function connectToOwner(dir: string, pid: number): Promise<Database> {
  // The owner serves its socket as soon as PGlite is open; give one that is starting a moment.
  for (let i = 0; i < 100 && !ownerSocketReady(dir); i++) {
    if (!processAlive(pid)) break;
    await Bun.sleep(100);
  }
  if (!ownerSocketReady(dir)) {
    throw new ConfigError(
      `the embedded database at ${dir} is in use by process ${pid}, which does not serve its socket; stop it first (or use DATABASE_URL=postgres://… to run several processes)`,
    );
  }
  const conn = { host: ownerSocketDir(dir), port: OWNER_SOCKET_PORT, user: "postgres", database: "postgres" };
  const pool = new pg.Pool({ ...conn, max: 1, connectionTimeoutMillis: 60_000 });
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  let closed = false;
  return {
    kind: "pglite",
    prisma,
    pool,
    owner: { pid },
    othersAttached: () => true,
    description: `pglite at ${dir} (through its owner, process ${pid})`,
    migrationAdapter: () => wholeScriptAdapter(new PrismaPg({ ...conn, max: 1 })),
    async close() {
      if (closed) return;
      closed = true;
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/**
 * pg corks its socket around the five messages of an extended-protocol query so they leave in one
 * write; Bun's net.Socket has no `_writev`, so the uncork still made one write (one syscall) per
 * message — a fifth of the service's CPU on a token read. With `_writev` the corked messages go
 * out as one buffer.
 */
function coalesceWrites(client: pg.PoolClient): void {
  const stream = (client as unknown as { connection?: { stream?: CorkedSocket } }).connection?.stream;
  if (!stream || typeof stream._write !== "function" || stream._writev) return;
  stream._writev = function (chunks, callback) {
    if (chunks.length === 1) return this._write(chunks[0]!.chunk, chunks[0]!.encoding, callback);
    const bytes = chunks.map((c) =>
      typeof c.chunk === "string" ? Buffer.from(c.chunk, c.encoding as BufferEncoding) : (c.chunk as Uint8Array),
    );
    this._write(Buffer.concat(bytes), "buffer", callback);
  };
}

interface CorkedSocket {
  _write(chunk: unknown, encoding: string, callback: (err?: Error | null) => void): void;
  _writev?(
    this: CorkedSocket,
    chunks: Array<{ chunk: unknown; encoding: string }>,
    callback: (err?: Error | null) => void,
  ): void;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Wraps an open PGlite instance (e.g. one restored from a template dump in tests). */
export function wrapPglite(pglite: PGlite, description: string): Database {
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
  let closed = false;
  return {
    kind: "pglite",
    prisma,
    pglite,
    description,
    migrationAdapter: () => new PrismaPGlite(pglite),
    async close() {
      if (closed) return;
      closed = true;
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}

/**
 * `@prisma/adapter-pg` runs a migration script by splitting it on every ";" — which cuts a
 * plpgsql body (our append-only trigger) in half. PostgreSQL's simple query protocol runs a
 * multi-statement script as sent, which is what `prisma migrate deploy` does natively.
 */
function wholeScriptAdapter(factory: PrismaPg): SqlMigrationAwareDriverAdapterFactory {
  type Adapter = Awaited<ReturnType<PrismaPg["connect"]>>;
  const patch = (adapter: Adapter) => {
    adapter.executeScript = async (script: string) => {
      try {
        await adapter.underlyingDriver().query(script);
      } catch (err) {
        (adapter as unknown as { onError(e: unknown): never }).onError(err);
      }
    };
    return adapter;
  };
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: async () => patch(await factory.connect()),
    connectToShadowDb: async () => patch(await factory.connectToShadowDb()),
  };
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable url>";
  }
}
