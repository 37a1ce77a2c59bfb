/**
 * A bounded least-recently-used map (Map keeps insertion order; a hit re-inserts the key at the end).
 * A full cache of maxSize ≥ 64 evicts in batches of maxSize/64, so it holds at least 63/64 of maxSize.
 */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();

  constructor(
    readonly maxSize: number,
    private readonly onEvict?: (key: K, value: V) => void,
  ) {
    if (!Number.isInteger(maxSize) || maxSize < 1) throw new RangeError("LRU size must be a positive integer");
  }

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    if (!this.map.has(key)) return undefined;
    const v = this.map.get(key) as V;
    this.map.delete(key);
    this.map.set(key, v);
    return v;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  set(key: K, value: V): this {
    if (this.map.has(key)) this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.maxSize) this.evict();
    return this;
  }

  /**
   * Drops the oldest 1/64 (at least down to maxSize) in one pass: starting a Map iterator costs
   * ~4 µs in JSC once deletions pile up at the front, so one per insert made a full cache slow.
   */
  private evict(): void {
    let n = this.map.size - this.maxSize + (this.maxSize >> 6);
    for (const [k, v] of this.map) {
      if (n-- <= 0) break;
      this.map.delete(k);
      this.onEvict?.(k, v);
    }
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    if (this.onEvict) for (const [k, v] of this.map) this.onEvict(k, v);
    this.map.clear();
  }
}
