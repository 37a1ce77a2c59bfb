/**
 * Mutual exclusion for token refreshes: an in-process single-flight (concurrent callers share one
 * run) in front of a PostgreSQL session advisory lock (one run across processes). On PGlite there
 * is only ever one process per database, so an in-process mutex per name is the lock (separate
 * single-flights for the same token, forced and unforced, still take turns).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { Database } from "../db/database.ts";
import { ServiceUnavailableError } from "../errors.ts";

/** Concurrent calls with the same key share the first caller's promise until it settles. */
export class SingleFlight<T> {
  readonly #inflight = new Map<string, Promise<T>>();

  run(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.#inflight.get(key);
    if (running) return running;
    const p = fn().finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  get size(): number {
    return this.#inflight.size;
  }
}

/** A signed 64-bit advisory-lock key from a string (first 8 bytes of SHA-256, with a domain prefix). */
export function advisoryKey(name: string): bigint {
  const h = sha256(new TextEncoder().encode(`chronokms:${name}`));
  return new DataView(h.buffer, h.byteOffset, 8).getBigInt64(0);
}

export class LockTimeoutError extends ServiceUnavailableError {
  constructor() {
    super("timed out waiting for another refresh of this token");
  }
}

/** Counting semaphore: how many pool connections may sit holding advisory locks at once. */
class Semaphore {
  #free: number;
  readonly #waiters: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(deadline: number): Promise<boolean> {
    if (this.#free > 0) {
      this.#free--;
      return true;
    }
    return new Promise<boolean>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(
        () => {
          const i = this.#waiters.indexOf(wake);
          if (i >= 0) this.#waiters.splice(i, 1);
          resolve(false);
        },
        Math.max(0, deadline - Date.now()),
      );
      this.#waiters.push(wake);
    });
  }
  release() {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}

export interface RefreshLock {
  /** Runs `fn` holding the cross-process lock named `name`; LockTimeoutError after `waitMs`. */
  withLock<T>(name: string, waitMs: number, fn: () => Promise<T>): Promise<T>;
}

export function createRefreshLock(db: Database): RefreshLock {
  const pool = db.pool;
  if (db.kind !== "postgres" || !pool) return inProcessLock();
  // The lock holder's own queries (re-read, write-back) need pool connections too: if lock
  // holders could take every connection, they would wait on each other forever.
  const holders = new Semaphore(Math.max(1, Math.floor((pool.options.max ?? 10) / 2)));
  return {
    async withLock(name, waitMs, fn) {
      const deadline = Date.now() + waitMs;
      if (!(await holders.acquire(deadline))) throw new LockTimeoutError();
      try {
        const client = await pool.connect();
        // A failed statement may leave the session in an unknown state: such a connection is
        // destroyed rather than returned to the pool, which also drops any advisory lock it held.
        let broken: Error | undefined;
        const sql = async (text: string, values?: unknown[]) => {
          try {
            await client.query(text, values);
          } catch (err) {
            broken = err instanceof Error ? err : new Error(String(err));
            throw err;
          }
        };
        const key = advisoryKey(name).toString();
        try {
          // lock_timeout bounds the wait for an advisory lock like any other lock; it is reset
          // before the connection goes back to the pool Prisma also uses.
          await sql(`SET lock_timeout = ${Math.max(1, Math.ceil(deadline - Date.now()))}`);
          try {
            await sql("SELECT pg_advisory_lock($1::bigint)", [key]);
          } catch (err) {
            if ((err as { code?: string }).code !== "55P03") throw err;
            broken = undefined;
            throw new LockTimeoutError();
          } finally {
            if (!broken) await sql("RESET lock_timeout");
          }
          try {
            return await fn();
          } finally {
            if (!broken) await sql("SELECT pg_advisory_unlock($1::bigint)", [key]);
          }
        } finally {
          client.release(broken);
        }
      } finally {
        holders.release();
      }
    },
  };
}

/** One holder per name within this process, waiters in arrival order; LockTimeoutError after `waitMs`. */
function inProcessLock(): RefreshLock {
  const tails = new Map<string, Promise<void>>();
  return {
    async withLock(name, waitMs, fn) {
      const prev = tails.get(name) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((r) => (release = r));
      const tail = prev.then(() => mine);
      tails.set(name, tail);
      void tail.then(() => {
        if (tails.get(name) === tail) tails.delete(name);
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const got = await Promise.race([
        prev.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), waitMs))),
      ]);
      clearTimeout(timer);
      if (!got) {
        release(); // our turn, when it comes, passes straight on
        throw new LockTimeoutError();
      }
      try {
        return await fn();
      } finally {
        release();
      }
    },
  };
}
