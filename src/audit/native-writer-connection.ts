/**
 * The audit writer's PostgreSQL connection on Bun's native client, where it provably reaches the
 * server `pg` would (src/db/native-reader.ts `nativeClientOptions`): the batch statement is on
 * every decision's critical path, and through `pg` its submission alone cost ~0.2 ms of CPU.
 *
 * One reserved connection holds the chain lock and runs every batch, as `pg`'s did. A reserved
 * connection never reconnects by itself: once the session is gone (and its advisory lock with it)
 * every statement on it fails, and `lost` is set, so no batch can land on a session that does not
 * hold its chain's lock. Session settings (statement_timeout, lock_timeout) are SET once after login.
 * If the server refuses this client's login (a password only `pg` knows, TLS required), the
 * writer uses `pg` from then on.
 */
import { SQL } from "bun";
import { asPgError, type NativeClientOptions, refusedLogin } from "../db/native-reader.ts";
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

type Reserved = Awaited<ReturnType<SQL["reserve"]>>;

interface Session {
  sql: SQL;
  conn: Reserved;
}

export class NativeWriterConnection implements WriterConnection {
  #session: Session | undefined;
  #connecting: Promise<Session> | undefined;
  #fallback: WriterConnection | undefined;
  #lost = false;
  #opened = false;

  constructor(
    private readonly options: NativeClientOptions,
    private readonly timeoutMs: number,
    /** The `pg` connection to use instead when the server refuses this client's login. */
    private readonly fallback: () => WriterConnection,
  ) {}

  get lost(): boolean {
    return this.#fallback ? this.#fallback.lost : this.#lost;
  }

  get opened(): boolean {
    return this.#fallback ? this.#fallback.opened : this.#opened;
  }

  async #connection(deadlineMs: number): Promise<Session> {
    if (this.#session && !this.#lost) return this.#session;
    this.discard();
    this.#connecting ??= (async () => {
      const ms = Math.max(1, Math.round(this.timeoutMs));
      let session: Session | undefined;
      const sql = new SQL({
        ...this.options,
        max: 1,
        idleTimeout: 0,
        onclose: () => {
          if (session && this.#session === session) this.#lost = true;
        },
      });
      try {
        const conn = await withDeadline(sql.reserve(), deadlineMs);
        session = { sql, conn };
        // Fail fast instead of queueing behind a lock: every caller of a batch is waiting. Set
        // after login, as pg's connection does: a pooler may refuse them as startup parameters.
        await withDeadline(conn.unsafe(`SET statement_timeout = ${ms}; SET lock_timeout = ${ms}`), deadlineMs);
      } catch (err) {
        session = undefined;
        void sql.close({ timeout: 0 }).catch(() => {});
        throw err;
      }
      this.#session = session;
      this.#lost = false;
      this.#opened = true;
      return session;
    })().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async lockChain(id: string): Promise<boolean> {
    if (this.#fallback) return this.#fallback.lockChain(id);
    const deadline = this.timeoutMs * 2 + 1_000;
    let s: Session;
    try {
      s = await this.#connection(deadline);
    } catch (err) {
      if (!refusedLogin(err)) throw asPgError(err);
      this.#fallback = this.fallback();
      return this.#fallback.lockChain(id);
    }
    const rows = await this.#guard(
      s.conn.unsafe("SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS ok", [CHAIN_LOCK_CLASS, id]),
      deadline,
    );
    return (rows as Array<{ ok: boolean }>)[0]?.ok === true;
  }

  unlockChain(id: string): void {
    if (this.#fallback) {
      this.#fallback.unlockChain(id);
      return;
    }
    const s = this.#session;
    if (!s || this.#lost) return;
    s.conn.unsafe("SELECT pg_advisory_unlock($1::int, hashtext($2))", [CHAIN_LOCK_CLASS, id]).catch(() => {});
  }

  #ready(): Session {
    if (!this.#session || this.#lost) throw new NotSentError();
    return this.#session;
  }

  async run(s: BatchStatement, deadlineMs: number): Promise<void> {
    if (this.#fallback) return this.#fallback.run(s, deadlineMs);
    await this.#guard(this.#ready().conn.unsafe(s.text, s.values), deadlineMs);
  }

  async runStepped(s: BatchStatement, deadlineMs: number, onStep: StepHook): Promise<void> {
    if (this.#fallback) return this.#fallback.runStepped(s, deadlineMs, onStep);
    const { conn } = this.#ready();
    const step: StepConnection = {
      backendPid: async () => ((await conn.unsafe("SELECT pg_backend_pid() AS pid")) as Array<{ pid: number }>)[0]!.pid,
    };
    const stepped = async () => {
      await conn.unsafe("BEGIN");
      try {
        await onStep("begin", step);
        await onStep("changed", step);
        await conn.unsafe(s.text, s.values);
        await onStep("inserted", step);
        await conn.unsafe("COMMIT");
      } catch (err) {
        await conn.unsafe("ROLLBACK").catch(() => {});
        throw err;
      }
    };
    await this.#guard(stepped(), deadlineMs);
  }

  /** A write past the client-side deadline leaves the session in an unknown state: it goes. */
  async #guard<T>(p: Promise<T>, deadlineMs: number): Promise<T> {
    try {
      return await withDeadline(p, deadlineMs);
    } catch (err) {
      if (err instanceof DeadlineError) this.discard();
      throw err instanceof DeadlineError ? err : asPgError(err);
    }
  }

  discard(): void {
    if (this.#fallback) {
      this.#fallback.discard();
      return;
    }
    const s = this.#session;
    this.#session = undefined;
    if (s) {
      this.#lost = true;
      s.conn.release();
      void s.sql.close({ timeout: 0 }).catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (this.#fallback) return this.#fallback.close();
    const s = this.#session;
    this.#session = undefined;
    if (s) {
      s.conn.release();
      await s.sql.close({ timeout: 5 }).catch(() => {});
    }
  }
}
