/**
 * The embedded database while its owner runs. PGlite is single-process: the process holding the
 * data directory's pid lock owns it and serves it over the PostgreSQL wire protocol on a Unix
 * socket next to it (`<dir>.socket/.s.PGSQL.5432`, directory 0700, socket 0600), so maintenance
 * scripts started meanwhile connect with the pg driver instead of refusing.
 *
 * PGlite has ONE backend session, shared by the owner's own queries and every socket client. The
 * socket's messages therefore take PGlite's transaction mutex (the one the owner's queries and
 * transactions take) and keep it while a client is inside a transaction or between the messages
 * of one extended-protocol query (Parse … Sync), so neither side's statements land inside the
 * other's transaction or unnamed statement. Between those, the owner and the clients interleave
 * statement by statement. A client that disconnects mid-transaction is rolled back.
 */
import { chmodSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketHandler } from "@electric-sql/pglite-socket";
import { announceStatement } from "./statement-watch.ts";

/** pg connects to `<host>/.s.PGSQL.<port>` when host is a directory. */
export const OWNER_SOCKET_PORT = 5432;

export function ownerSocketDir(dataDir: string): string {
  return `${dataDir}.socket`;
}

export function ownerSocketPath(dataDir: string): string {
  return join(ownerSocketDir(dataDir), `.s.PGSQL.${OWNER_SOCKET_PORT}`);
}

interface Queued {
  handlerId: number;
  message: Uint8Array;
  onData(data: Uint8Array): void;
  resolve(n: number): void;
  reject(err: unknown): void;
}

const SYNC = 0x53; // 'S'
const QUERY = 0x51; // 'Q'
const TERMINATE = 0x58; // 'X'

/** A simple-protocol Query message. */
function simpleQuery(sql: string): Uint8Array {
  const body = new TextEncoder().encode(`${sql}\0`);
  const msg = new Uint8Array(5 + body.length);
  msg[0] = QUERY;
  new DataView(msg.buffer).setInt32(1, 4 + body.length);
  msg.set(body, 5);
  return msg;
}

/**
 * Stands in for pglite-socket's query queue (same three methods the handler calls): runs one
 * message at a time under PGlite's transaction mutex, held across a client's transaction.
 */
class SharedSessionQueue {
  private queue: Queued[] = [];
  private processing = false;
  /** The handler whose transaction or extended query is open, and the mutex release. */
  private holder: { handlerId: number; release: () => void } | undefined;
  /** Handlers that disconnected while one of their messages was executing. */
  private readonly gone = new Set<number>();
  private executing: number | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly pglite: PGlite) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (d: Uint8Array) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error("the database owner is shutting down"));
      this.queue.push({ handlerId, message, onData, resolve, reject });
      void this.process();
    });
  }

  clearQueueForHandler(handlerId: number): void {
    if (this.executing === handlerId) this.gone.add(handlerId);
    this.queue = this.queue.filter((q) => {
      if (q.handlerId !== handlerId) return true;
      q.reject(new Error("client disconnected"));
      return false;
    });
  }

  /** The client left: end whatever it had open, then let the others (and the owner) go on. */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    const h = this.holder;
    if (!h || h.handlerId !== handlerId) return; // (a message still executing is handled by process())
    this.holder = undefined;
    try {
      await this.endSession();
    } finally {
      h.release();
      void this.process();
    }
  }

  /** Sync ends an unfinished extended query; ROLLBACK an open transaction. Caller holds the mutex. */
  private async endSession(): Promise<void> {
    const discard = { onRawData: () => {} };
    await this.pglite.execProtocolRawStream(new Uint8Array([SYNC, 0, 0, 0, 4]), discard).catch(() => {});
    if (this.inTransaction()) await this.pglite.execProtocolRawStream(simpleQuery("ROLLBACK"), discard).catch(() => {});
  }

  /** PGlite's flag; false once it is closed (its module is gone). */
  private inTransaction(): boolean {
    try {
      return this.pglite.isInTransaction();
    } catch {
      return false;
    }
  }

  private acquire(): Promise<() => void> {
    return new Promise((acquired) => {
      void this.pglite._runExclusiveTransaction(() => new Promise<void>((release) => acquired(release)));
    });
  }

  /** Stops taking messages, waits for the one executing, and hands the session back (before PGlite closes). */
  async close(): Promise<void> {
    this.closed = true;
    for (const q of this.queue.splice(0)) q.reject(new Error("the database owner is shutting down"));
    await this.running;
    const h = this.holder;
    this.holder = undefined;
    if (h) {
      await this.endSession();
      h.release();
    }
  }

  private process(): Promise<void> {
    if (this.processing) return this.running ?? Promise.resolve();
    this.running = this.loop();
    return this.running;
  }

  private async loop(): Promise<void> {
    this.processing = true;
    try {
      for (;;) {
        if (this.closed) return;
        const holder = this.holder;
        const i = holder ? this.queue.findIndex((q) => q.handlerId === holder.handlerId) : 0;
        if (i < 0 || this.queue.length === 0) return; // wait for the holder's next message
        const item = this.queue.splice(i, 1)[0]!;
        const release = holder?.release ?? (await this.acquire());
        let bytes = 0;
        this.executing = item.handlerId;
        announceStatement(this.pglite, null);
        try {
          await this.pglite.execProtocolRawStream(item.message, {
            onRawData: (d) => {
              bytes += d.length;
              item.onData(d);
            },
          });
          item.resolve(bytes);
        } catch (err) {
          item.reject(err);
        } finally {
          this.executing = undefined;
          announceStatement(this.pglite, null);
        }
        if (this.gone.delete(item.handlerId)) {
          // Its client left while this ran: close what it opened and hand the session back.
          await this.endSession();
          this.holder = undefined;
          release();
          continue;
        }
        const type = item.message[0];
        // A startup message begins with its length (first byte 0); Sync, Query and Terminate end a unit.
        const boundary = type === SYNC || type === QUERY || type === TERMINATE || type === 0;
        if (boundary && !this.inTransaction()) {
          this.holder = undefined;
          release();
        } else {
          this.holder = { handlerId: item.handlerId, release };
        }
      }
    } finally {
      this.processing = false;
    }
  }
}

export interface OwnerSocket {
  readonly path: string;
  /** Clients (maintenance scripts, Studio) connected right now. */
  clientCount(): number;
  close(): Promise<void>;
}

/** Serves `pglite` (the data directory `dataDir`, whose lock this process holds) on its owner socket. */
export async function serveOwnerSocket(pglite: PGlite, dataDir: string): Promise<OwnerSocket> {
  const dir = ownerSocketDir(dataDir);
  const path = ownerSocketPath(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  rmSync(path, { force: true }); // left by an owner that died; we hold the lock now
  const queue = new SharedSessionQueue(pglite);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // The handler only calls enqueue / clearQueueForHandler / clearTransactionIfNeeded on its queue.
    const handler = new PGLiteSocketHandler({ queryQueue: queue as never, closeOnDetach: true });
    handler.attach(socket).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  server.on("error", () => {});
  return {
    path,
    clientCount: () => sockets.size,
    async close() {
      await queue.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(path, { force: true });
    },
  };
}

/** Whether an owner's socket is there to connect to. */
export function ownerSocketReady(dataDir: string): boolean {
  return existsSync(ownerSocketPath(dataDir));
}
