/**
 * The re-encryption engine behind rotation: moves every record that names an older master key
 * version onto the active one, in batches. Resumable by construction: each batch just looks for
 * records not yet on the target version, and each batch's write is one atomic compare-and-set
 * statement, so killing it at any point leaves every record on exactly one valid version.
 */
import type { KeyService } from "./types.ts";

/** What a store needs to count in a caller's transaction (a Prisma client or transaction client). */
export interface SqlClient {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): Promise<T>;
}

/** A record rewrap could not open (so could not move): skipped, audited, reported. */
export interface FailedRecord {
  id: string;
  /** Human name of the record, e.g. `token:gmail:alice` (never a value). */
  label: string;
  field?: string;
}

/** A store of sealed values that knows which version each record is under. */
export interface Rewrappable {
  /** Stable name shown in counts and progress (e.g. `oauth_tokens`). */
  name: string;
  /** Records per master key version. */
  countByVersion(): Promise<Map<number, number>>;
  /**
   * Records still in a superseded envelope format (moved by the next rewrap whatever their version);
   * `client` is the transaction to count in (ending v1 acceptance counts and clears in one).
   */
  countLegacy?(client?: SqlClient): Promise<number>;
  /** Up to `limit` records still under `version` (what blocks its retirement). */
  listByVersion?(version: number, limit: number): Promise<Array<{ id: string; label: string }>>;
  /**
   * Looks at the next `limit` records after the id `after` and re-seals those that name a version
   * other than `targetVersion` (or a superseded format), writing them with compare-and-set. A record changed
   * concurrently is skipped (picked up by a later pass); a record that does not open is skipped,
   * audited and returned in `failed`; ids in `skip` are not tried again. `next` is the cursor of the
   * next batch, null at the end.
   */
  rewrapBatch(
    keys: KeyService,
    opts: { targetVersion: number; limit: number; after?: string | null; skip?: ReadonlySet<string> },
  ): Promise<{
    moved: number;
    failed: FailedRecord[];
    next: string | null;
    /** Pending records it re-sealed but could not write: changed, or held by another transaction. */
    skipped?: number;
  }>;
}

export interface RewrapProgress {
  store: string;
  targetVersion: number;
  /** Records moved so far in this run (all stores). */
  done: number;
  /** done + still pending when the run started or last recounted. */
  total: number;
  /** Records per second over this run. */
  rate: number;
}

export interface RewrapResult {
  targetVersion: number;
  moved: number;
  /** Records still pending at the end (failed ones, or ones concurrent writers kept changing or holding). */
  remaining: number;
  /** Records that did not open (audited DECRYPT_FAILED): they block retiring their version until fixed or deleted. */
  failed: Array<FailedRecord & { store: string }>;
  elapsedMs: number;
}

/** Sum of counts over versions other than `version`. */
export function pendingFor(counts: Map<number, number>, version: number): number {
  let n = 0;
  for (const [v, c] of counts) if (v !== version) n += c;
  return n;
}

export async function pendingByStore(targets: readonly Rewrappable[], version: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const t of targets) out.set(t.name, pendingFor(await t.countByVersion(), version));
  return out;
}

/** Records on the active version still in a superseded format (a rewrap moves them too). */
async function legacyOnVersion(targets: readonly Rewrappable[]): Promise<number> {
  let n = 0;
  for (const t of targets) n += (await t.countLegacy?.()) ?? 0;
  return n;
}

const MAX_BATCH = 10_000;
const EMPTY_PASSES = 5;

export async function runRewrap(
  keys: KeyService,
  targets: readonly Rewrappable[],
  opts: {
    batchSize?: number;
    onProgress?: (p: RewrapProgress) => void /** Stops between batches (shutdown); what moved stays moved. */;
    signal?: AbortSignal;
  } = {},
): Promise<RewrapResult> {
  const batchSize = Math.min(Math.max(1, Math.floor(opts.batchSize ?? 1000)), MAX_BATCH);
  const started = performance.now();
  let moved = 0;
  let targetVersion = (await keys.active()).version;
  let total = 0;
  for (const n of (await pendingByStore(targets, targetVersion)).values()) total += n;
  total = Math.max(total, await legacyOnVersion(targets));
  const failed = new Map<string, Map<string, FailedRecord>>(targets.map((t) => [t.name, new Map()]));
  const failedCount = () => [...failed.values()].reduce((n, m) => n + m.size, 0);
  const report = (store: string) =>
    opts.onProgress?.({
      store,
      targetVersion,
      done: moved,
      total: Math.max(total, moved),
      rate: moved / Math.max((performance.now() - started) / 1000, 1e-3),
    });
  report(targets[0]?.name ?? "");

  // Repeat until a full pass finds nothing pending on the (current) active version but the records
  // that failed to open: a rotation by someone else during the run simply moves the target.
  for (let emptyPasses = 0; ; ) {
    const before = moved;
    // A record the pass met but could not write is pending whatever the counts say (a count by
    // key version does not see one pending by its format or bookkeeping only).
    let skipped = 0;
    for (const t of targets) {
      const bad = failed.get(t.name)!;
      let after: string | null = null;
      for (;;) {
        if (opts.signal?.aborted) {
          let remaining = 0;
          for (const n of (await pendingByStore(targets, targetVersion)).values()) remaining += n;
          const list = [...failed.entries()].flatMap(([store, m]) => [...m.values()].map((f) => ({ ...f, store })));
          return { targetVersion, moved, remaining, failed: list, elapsedMs: performance.now() - started };
        }
        const r = await t.rewrapBatch(keys, { targetVersion, limit: batchSize, after, skip: new Set(bad.keys()) });
        moved += r.moved;
        skipped += r.skipped ?? 0;
        for (const f of r.failed) bad.set(f.id, f);
        report(t.name);
        if (r.next === null) break;
        after = r.next;
      }
    }
    const active = (await keys.active()).version;
    let remaining = 0;
    for (const n of (await pendingByStore(targets, active)).values()) remaining += n;
    const stuck = failedCount();
    emptyPasses = moved === before ? emptyPasses + 1 : 0;
    if ((remaining <= stuck && skipped === 0) || emptyPasses >= EMPTY_PASSES) {
      // No v1 value left anywhere: v1 envelopes are refused from now on (one transaction).
      await keys.endLegacyTokenEnvelopes?.();
      const list = [...failed.entries()].flatMap(([store, m]) => [...m.values()].map((f) => ({ ...f, store })));
      remaining = Math.max(remaining, stuck + skipped);
      return { targetVersion: active, moved, remaining, failed: list, elapsedMs: performance.now() - started };
    }
    if (active !== targetVersion) {
      targetVersion = active;
      emptyPasses = 0;
    }
    total = moved + remaining;
    // Records that a concurrent writer kept changing or holding: give it a moment, then retry.
    await Bun.sleep(50 * emptyPasses);
  }
}

const running = new WeakSet<object>();
const rerun = new WeakSet<object>();

/**
 * After a rotation through the HTTP API: re-encrypts in this process, in the background, one run at
 * a time. Losing it (crash, restart) loses nothing: `bun run keys:rotate --no-rotate` or the next
 * run finishes the job.
 */
export function rewrapInBackground(
  keys: KeyService & { rewrappables(): readonly Rewrappable[] },
  log: { info(m: string, f?: Record<string, unknown>): void; error(m: string, f?: Record<string, unknown>): void },
): void {
  if (running.has(keys)) {
    rerun.add(keys);
    return;
  }
  running.add(keys);
  void (async () => {
    try {
      do {
        rerun.delete(keys);
        const r = await runRewrap(keys, keys.rewrappables(), { batchSize: 500 });
        log.info("background re-encryption finished", { ...r });
      } while (rerun.has(keys));
    } catch (err) {
      log.error("background re-encryption failed; run `bun run keys:rotate --no-rotate`", { err });
    } finally {
      running.delete(keys);
    }
  })();
}
