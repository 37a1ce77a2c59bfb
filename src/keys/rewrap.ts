/**
 * The re-encryption engine behind rotation: moves every record that names an older master key
 * version onto the active one, in batches. Resumable by construction: each batch just looks for
 * records not yet on the target version, and each batch's write is one atomic compare-and-set
 * statement, so killing it at any point leaves every record on exactly one valid version.
 */
import type { KeyService } from "./types.ts";

/** A store of sealed values that knows which version each record is under. */
export interface Rewrappable {
  /** Stable name shown in counts and progress (e.g. `oauth_tokens`). */
  name: string;
  /** Records per master key version. */
  countByVersion(): Promise<Map<number, number>>;
  /**
   * Re-seals up to `limit` records that name a version other than `targetVersion` (keeping each
   * value's original `ts` and `ctx`) and writes them with compare-and-set; returns how many moved.
   * A record changed concurrently is skipped (it is picked up again by a later batch).
   */
  rewrapBatch(keys: KeyService, opts: { targetVersion: number; limit: number }): Promise<number>;
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
  /** Records still on other versions at the end (non-zero only if concurrent writers kept racing us). */
  remaining: number;
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

const MAX_BATCH = 10_000;
const EMPTY_PASSES = 5;

export async function runRewrap(
  keys: KeyService,
  targets: readonly Rewrappable[],
  opts: { batchSize?: number; onProgress?: (p: RewrapProgress) => void; /** Stops between batches (shutdown); what moved stays moved. */ signal?: AbortSignal } = {},
): Promise<RewrapResult> {
  const batchSize = Math.min(Math.max(1, Math.floor(opts.batchSize ?? 1000)), MAX_BATCH);
  const started = performance.now();
  let moved = 0;
  let targetVersion = (await keys.active()).version;
  let total = 0;
  for (const n of (await pendingByStore(targets, targetVersion)).values()) total += n;
  const report = (store: string) =>
    opts.onProgress?.({ store, targetVersion, done: moved, total: Math.max(total, moved), rate: moved / Math.max((performance.now() - started) / 1000, 1e-3) });
  report(targets[0]?.name ?? "");

  // Repeat until a full pass finds nothing pending on the (current) active version: a rotation
  // by someone else during the run simply moves the target.
  for (let emptyPasses = 0; ; ) {
    const before = moved;
    for (const t of targets) {
      for (;;) {
        if (opts.signal?.aborted) {
          let remaining = 0;
          for (const n of (await pendingByStore(targets, targetVersion)).values()) remaining += n;
          return { targetVersion, moved, remaining, elapsedMs: performance.now() - started };
        }
        const n = await t.rewrapBatch(keys, { targetVersion, limit: batchSize });
        moved += n;
        report(t.name);
        if (n === 0) break;
      }
    }
    const active = (await keys.active()).version;
    let remaining = 0;
    for (const n of (await pendingByStore(targets, active)).values()) remaining += n;
    emptyPasses = moved === before ? emptyPasses + 1 : 0;
    if (remaining === 0 || emptyPasses >= EMPTY_PASSES) {
      return { targetVersion: active, moved, remaining, elapsedMs: performance.now() - started };
    }
    if (active !== targetVersion) {
      targetVersion = active;
      emptyPasses = 0;
    }
    total = moved + remaining;
    // Records that a concurrent writer kept changing under us: give it a moment, then retry.
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
export function rewrapInBackground(keys: KeyService & { rewrappables(): readonly Rewrappable[] }, log: { info(m: string, f?: Record<string, unknown>): void; error(m: string, f?: Record<string, unknown>): void }): void {
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
