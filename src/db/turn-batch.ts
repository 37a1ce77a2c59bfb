/**
 * Point reads that arrive in the same event-loop turn go to the database as one statement. Under
 * load a turn handles many requests (a dozen or more at 64 connections here), and each statement
 * costs a socket write and a server-side bind/execute/flush of its own; at one connection a turn
 * holds one read and the statement goes out alone, one `setImmediate` later.
 */
export class TurnBatch<K, R> {
  #pending: Array<{ key: K; resolve(r: R | null): void; reject(e: unknown): void }> = [];

  /** `run` answers every key, in order (null: no row); it sees each batch once. */
  constructor(private readonly run: (keys: readonly K[]) => Promise<ReadonlyArray<R | null>>) {}

  get(key: K): Promise<R | null> {
    return new Promise((resolve, reject) => {
      if (this.#pending.length === 0) setImmediate(() => this.#flush());
      this.#pending.push({ key, resolve, reject });
    });
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    this.run(batch.map((p) => p.key)).then(
      (rows) => {
        for (const [i, p] of batch.entries()) p.resolve(rows[i] ?? null);
      },
      (err: unknown) => {
        for (const p of batch) p.reject(err);
      },
    );
  }
}
