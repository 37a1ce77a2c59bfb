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
  readonly pglite?: PGlite;
  /** Where it lives, for logs (never includes a password). */
  readonly description: string;
  close(): Promise<void>;
}

export async function openDatabase(target: DatabaseTarget): Promise<Database> {
  return target.kind === "postgres" ? openPostgres(target.url, target.poolSize ?? 10) : openPglite(target.dataDir);
}

function openPostgres(url: string, poolSize: number): Database {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 5_000 });
  // A client that loses its server (restart, pg_terminate_backend, failover) emits 'error'. The
  // pool listens only while a client is idle; a checked-out client between two queries of a
  // transaction has no listener, and an unhandled 'error' event would crash the process. The
  // query in flight (or the next one) fails on its own and the pool replaces the client, so a
  // permanent listener on every client only has to keep the event from being fatal.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  let closed = false;
  return {
    kind: "postgres",
    prisma,
    pool,
    description: redactUrl(url),
    migrationAdapter: () => wholeScriptAdapter(new PrismaPg({ connectionString: url, max: 2 })),
    async close() {
      if (closed) return;
      closed = true;
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

async function openPglite(dataDir: string | null): Promise<Database> {
  let pglite: PGlite;
  if (dataDir === null) {
    pglite = new PGlite();
  } else {
    const dir = resolve(dataDir);
    // Data directory 0700, files 0600 (SPEC §12); an existing, looser tree is fixed here.
    makePrivateDir(dir);
    const unlock = lockDataDir(dir);
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
    const db = wrapPglite(pglite, `pglite at ${dir}`);
    const close = db.close;
    return { ...db, close: async () => (await close(), restrictTree(dir), unlock()) };
  }
  await pglite.waitReady;
  return wrapPglite(pglite, "pglite (in memory)");
}

/**
 * PGlite is a single-process database: a second process opening the same directory would corrupt
 * it. A pid file next to it refuses that with a clear message (a stale one, whose process is
 * gone, is taken over).
 */
function lockDataDir(dir: string): () => void {
  const lockPath = `${dir}.lock`;
  const take = () => writeFileSync(lockPath, String(process.pid), { flag: "wx", mode: 0o600 });
  try {
    take();
  } catch {
    const holder = Number(readFileSync(lockPath, "utf8").trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
      throw new ConfigError(
        `the embedded database at ${dir} is in use by process ${holder}; stop it first (or use DATABASE_URL=postgres://… to run several processes)`,
      );
    }
    rmSync(lockPath, { force: true });
    take();
  }
  return () => rmSync(lockPath, { force: true });
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
