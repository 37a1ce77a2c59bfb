/**
 * The audit writer's connections through `pg` (PostgreSQL, and PGlite through its owner's socket)
 * and to the embedded PGlite in this process; the contract and what each does are in
 * writer-connection.ts.
 */
import pg from "pg";
import type { Database } from "../db/database.ts";
import { pglitePrepared } from "../db/pglite-prepared.ts";
import type { BatchStatement } from "./batch-statement.ts";
import { CHAIN_LOCK_CLASS } from "./chain.ts";
import {
  DeadlineError,
  NotSentError,
  type StepConnection,
  type StepHook,
  type WriterConnection,
  withDeadline,
} from "./writer-connection.ts";

export class PostgresWriterConnection implements WriterConnection {
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  lost = false;
  opened = false;

  constructor(
    private readonly options: pg.PoolConfig,
    private readonly timeoutMs: number,
  ) {}

  async #connection(deadlineMs: number): Promise<pg.Client> {
    if (this.#client && !this.lost) return this.#client;
    this.discard();
    this.#connecting ??= (async () => {
      const c = new pg.Client(this.options);
      const gone = () => {
        if (this.#client === c) this.lost = true;
      };
      c.on("error", gone);
      c.on("end", gone);
      try {
        await withDeadline(c.connect(), deadlineMs);
        // Fail fast instead of queueing behind a lock: every caller of a batch is waiting.
        const ms = String(Math.max(1, Math.round(this.timeoutMs)));
        await withDeadline(c.query(`SET statement_timeout = ${ms}; SET lock_timeout = ${ms}`), deadlineMs);
      } catch (err) {
        void c.end().catch(() => {});
        throw err;
      }
      this.#client = c;
      this.lost = false;
      this.opened = true;
      return c;
    })().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async lockChain(id: string): Promise<boolean> {
    const c = await this.#connection(this.timeoutMs * 2 + 1_000);
    const r = await withDeadline(
      c.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS ok", [CHAIN_LOCK_CLASS, id]),
      this.timeoutMs * 2 + 1_000,
    );
    return r.rows[0]?.ok === true;
  }

  unlockChain(id: string): void {
    if (!this.#client || this.lost) return;
    this.#client.query("SELECT pg_advisory_unlock($1::int, hashtext($2))", [CHAIN_LOCK_CLASS, id]).catch(() => {});
  }

  #ready(): pg.Client {
    if (!this.#client || this.lost) throw new NotSentError();
    return this.#client;
  }

  async run(s: BatchStatement, deadlineMs: number): Promise<void> {
    await this.#guard(this.#ready().query({ name: s.name, text: s.text, values: s.values }), deadlineMs);
  }

  async runStepped(s: BatchStatement, deadlineMs: number, onStep: StepHook): Promise<void> {
    const c = this.#ready();
    await this.#guard(steppedOn(c, { name: s.name, text: s.text, values: s.values }, onStep), deadlineMs);
  }

  /** A write past the client-side deadline (a dead TCP peer never answers) leaves the connection unusable. */
  async #guard(p: Promise<unknown>, deadlineMs: number): Promise<void> {
    try {
      await withDeadline(p, deadlineMs);
    } catch (err) {
      if (err instanceof DeadlineError) this.discard();
      throw err;
    }
  }

  discard(): void {
    const c = this.#client;
    this.#client = undefined;
    if (c) {
      this.lost = true;
      void c.end().catch(() => {});
    }
  }

  async close(): Promise<void> {
    const c = this.#client;
    this.#client = undefined;
    await c?.end().catch(() => {});
  }
}

/** The embedded database has one process: no chain lock to hold, no connection of its own to lose. */
const embedded = {
  lost: false,
  opened: true,
  lockChain: async () => true,
  unlockChain: () => {},
  discard: () => {},
  close: async () => {},
};

export function pgliteConnection(pglite: NonNullable<Database["pglite"]>): WriterConnection {
  return {
    ...embedded,
    run: async (s, deadlineMs) =>
      void (await withDeadline(pglitePrepared(pglite, s.name, s.text, s.values), deadlineMs)),
    runStepped: async (s, deadlineMs, onStep) => {
      await withDeadline(
        pglite.transaction(async (tx) => {
          // Inside the transaction through `tx`: PGlite's own query would wait for it to end.
          const conn: StepConnection = {
            backendPid: async () => (await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid,
          };
          await onStep("begin", conn);
          await onStep("changed", conn);
          await tx.query(s.text, s.values);
          await onStep("inserted", conn);
        }),
        deadlineMs,
      );
    },
  };
}

export function ownerSocketConnection(pool: pg.Pool): WriterConnection {
  return {
    ...embedded,
    run: async (s, deadlineMs) => void (await withDeadline(pool.query(s.text, s.values), deadlineMs)),
    runStepped: async (s, deadlineMs, onStep) => {
      const c = await pool.connect();
      try {
        await withDeadline(steppedOn(c, { text: s.text, values: s.values }, onStep), deadlineMs);
      } finally {
        c.release();
      }
    },
  };
}

/** The statement inside BEGIN … COMMIT on one pg connection, the hook called at each step; rolled back on failure. */
async function steppedOn(c: pg.ClientBase, q: pg.QueryConfig, onStep: StepHook): Promise<void> {
  const conn: StepConnection = {
    backendPid: async () => (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid,
  };
  await c.query("BEGIN");
  try {
    await onStep("begin", conn);
    await onStep("changed", conn);
    await c.query(q);
    await onStep("inserted", conn);
    await c.query("COMMIT");
  } catch (err) {
    await c.query("ROLLBACK").catch(() => {});
    throw err;
  }
}
