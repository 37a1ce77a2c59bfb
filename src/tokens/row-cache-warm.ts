/**
 * Loads the embedded owner's token row cache (src/tokens/row-cache.ts) ahead of the reads: on
 * PGlite a read that misses pays a whole SELECT in WASM on the service thread, and with more
 * users than reads per second most reads would miss for a long while. So the service loads every
 * row (up to the cache's caps) in pages at start, and again once writes that dropped the cache
 * have been quiet for a moment. A page is kept only if nothing dropped or rewrote the cache since
 * its SELECT was sent (`TokenRowCache.fillPage`), the rule that keeps a read's fill from putting
 * back a row a write just changed; an interrupted load starts over later.
 *
 * Cost bound: a load runs no sooner than QUIET_MS after the last drop, and no more than 1/DUTY
 * of the time (the next waits DUTY × the last one's duration), so a steady stream of writes
 * never turns into a stream of full loads.
 */

/** Outcome of one load: all rows (or the caps) reached, or a page refused because the cache was dropped meanwhile. */
export type LoadOutcome = "done" | "interrupted";

const QUIET_MS = 1_000;
const DUTY = 20;

export class RowCacheWarmer {
  readonly #load: (stopped: () => boolean) => Promise<LoadOutcome>;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #lastDrop = Number.NEGATIVE_INFINITY;
  #notBefore = 0;
  #stopped = false;

  /** `load` checks `stopped` between pages, so that stopping waits for one page, not the whole load. */
  constructor(load: (stopped: () => boolean) => Promise<LoadOutcome>) {
    this.#load = load;
  }

  /** The first load, now. */
  start(): void {
    this.#schedule(0);
  }

  /** The cache was dropped: load again once writes are quiet. */
  dropped(): void {
    this.#lastDrop = performance.now();
    if (!this.#stopped && !this.#running) this.#schedule(QUIET_MS);
  }

  /** No further loads; waits for one under way (before the database closes). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#tick();
    }, delayMs);
    this.#timer.unref?.();
  }

  #tick(): void {
    if (this.#stopped || this.#running) return;
    const now = performance.now();
    const wait = Math.max(this.#lastDrop + QUIET_MS - now, this.#notBefore - now);
    if (wait > 0) this.#schedule(wait);
    else this.#running = this.#run(now);
  }

  async #run(startedAt: number): Promise<void> {
    let outcome: LoadOutcome | "failed";
    try {
      outcome = await this.#load(() => this.#stopped);
    } catch {
      // The database closing, or an error a retry would meet again: reads still fill the cache one
      // by one, and the next drop tries a load again.
      outcome = "failed";
    }
    const ended = performance.now();
    this.#notBefore = ended + DUTY * (ended - startedAt);
    this.#running = undefined;
    if (outcome === "interrupted" || this.#lastDrop >= startedAt) this.#schedule(QUIET_MS);
  }
}
