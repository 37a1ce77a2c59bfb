/** A bounded least-recently-used map (Map keeps insertion order; a hit re-inserts the key at the end). */
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
    while (this.map.size > this.maxSize) {
      const oldest = this.map.keys().next().value as K;
      const v = this.map.get(oldest) as V;
      this.map.delete(oldest);
      this.onEvict?.(oldest, v);
    }
    return this;
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    if (this.onEvict) for (const [k, v] of this.map) this.onEvict(k, v);
    this.map.clear();
  }
}
