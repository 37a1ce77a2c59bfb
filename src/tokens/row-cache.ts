/**
 * Token rows cached in the embedded database's owner process. Every statement on PGlite runs the
 * whole Postgres pipeline in WASM on the service's own thread (~360 µs per indexed SELECT), and
 * there the owner is the only writer but for scripts and Studio, which reach it through the owner
 * socket (src/db/owner-socket.ts). So the cache is exact when:
 * - every statement that may write the table drops everything, before and after it runs, whoever
 *   runs it in this process (src/db/statement-watch.ts), as does anything a socket client sends,
 *   and rows are filled only while no trigger, rule, function or foreign key may write the table
 *   behind a statement (src/tokens/row-cache-guard.ts);
 * - the lastUsed flush, the one frequent writer, writes its times through instead;
 * - a read fills the cache only if no invalidation happened since it issued its SELECT (the
 *   generation check), so a row read just before a write is never put back after it.
 * Never used on PostgreSQL, where other processes write the table.
 */
import type { TokenRow } from "./record.ts";

export const TOKEN_ROW_CACHE_MAX_ROWS = 20_000;
/** A row's envelopes run to ~24 KiB (two 8 KiB tokens): the row count alone would allow ~0.5 GB. */
export const TOKEN_ROW_CACHE_MAX_BYTES = 64 * 1024 * 1024;

export class TokenRowCache {
  readonly #rows = new Map<string, TokenRow>();
  #bytes = 0;
  #generation = 0;

  /** Snapshot to pass to `fill` with the row the SELECT then returns. */
  generation(): number {
    return this.#generation;
  }

  get(userId: string, integration: string): TokenRow | undefined {
    return this.#rows.get(keyOf(userId, integration));
  }

  fill(generation: number, row: TokenRow): void {
    if (generation !== this.#generation) return;
    const k = keyOf(row.userId, row.integration);
    this.#remove(k);
    this.#rows.set(k, Object.freeze(row));
    this.#bytes += sizeOf(row);
    while (this.#rows.size > TOKEN_ROW_CACHE_MAX_ROWS || this.#bytes > TOKEN_ROW_CACHE_MAX_BYTES)
      this.#remove(this.#rows.keys().next().value as string);
  }

  /**
   * A page of the start-up or background load (src/tokens/row-cache-warm.ts): kept only if nothing
   * was dropped since its SELECT was sent, as `fill`, and only while within the caps (a load
   * evicts nothing). False when the page was refused or the cache is full: stop loading.
   */
  fillPage(generation: number, rows: readonly TokenRow[]): boolean {
    if (generation !== this.#generation) return false;
    for (const row of rows) {
      const k = keyOf(row.userId, row.integration);
      if (this.#rows.has(k)) continue;
      const size = sizeOf(row);
      if (this.#rows.size >= TOKEN_ROW_CACHE_MAX_ROWS || this.#bytes + size > TOKEN_ROW_CACHE_MAX_BYTES) return false;
      this.#rows.set(k, Object.freeze(row));
      this.#bytes += size;
    }
    return true;
  }

  #remove(k: string): void {
    const old = this.#rows.get(k);
    if (!old) return;
    this.#rows.delete(k);
    this.#bytes -= sizeOf(old);
  }

  /** Around any statement that may write the table (which rows is not worth parsing out): drop the lot. */
  forgetAll(): void {
    this.#generation++;
    this.#rows.clear();
    this.#bytes = 0;
  }

  /** After a lastUsed flush (GREATEST semantics, as the UPDATE): cached rows carry the value the row now has. */
  lastUsed(times: ReadonlyMap<string, Date>): void {
    this.#generation++;
    for (const [k, row] of this.#rows) {
      const t = times.get(row.id);
      if (t && (row.lastUsed === null || row.lastUsed < t)) this.#rows.set(k, Object.freeze({ ...row, lastUsed: t }));
    }
  }
}

/** An estimate: the strings' lengths (one byte a character for these ASCII columns) and a fixed overhead. */
function sizeOf(row: TokenRow): number {
  let n = 512;
  for (const v of Object.values(row)) if (typeof v === "string") n += v.length;
  return n;
}

function keyOf(userId: string, integration: string): string {
  return `${integration}\u0000${userId}`;
}
