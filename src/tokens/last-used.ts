/**
 * `lastUsed` bookkeeping off the read path: reads note the time in memory and one UPDATE every
 * few seconds writes them all. It never bumps the row version (it is bookkeeping, not token
 * content), so it cannot make a refresh or a key-rotation re-seal miss its compare-and-set.
 */
import type { Database } from "../db/database.ts";
import type { Logger } from "../log.ts";
import { tokenRepository } from "./repository.ts";

export class LastUsedTracker {
  readonly #db: Database;
  readonly #log: Logger;
  #pending = new Map<string, number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(db: Database, log: Logger, opts: { flushMs?: number } = {}) {
    this.#db = db;
    this.#log = log;
    this.#timer = setInterval(() => void this.flush(), opts.flushMs ?? 5_000);
    this.#timer.unref?.();
  }

  touch(id: string, at: number): void {
    const prev = this.#pending.get(id);
    if (prev === undefined || prev < at) this.#pending.set(id, at);
  }

  /** Writes what is pending; a failure is logged and the times are kept for the next flush. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      if (this.#pending.size === 0) return;
      const batch = this.#pending;
      this.#pending = new Map();
      const times = new Map([...batch].map(([id, at]) => [id, new Date(at)]));
      try {
        // Deleted rows simply match nothing; rows another transaction holds wait for the next flush.
        const held = await tokenRepository(this.#db).flushLastUsed(times);
        for (const id of held) this.touch(id, batch.get(id)!);
      } catch (err) {
        this.#log.warn("lastUsed flush failed; will retry", { err, rows: batch.size });
        for (const [id, at] of batch) this.touch(id, at);
      }
    });
    return this.#flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
