/**
 * Runs the rotation schedule inside the service: every tick, one process (a PostgreSQL session
 * advisory lock; in-process on the single-process embedded database) rotates when due, re-encrypts
 * whatever is still on older versions, and retires decrypt-only versions nothing needs once
 * `retireAfterSeconds` has passed. Each step is audited with actor `scheduler`. A process killed
 * mid-way loses its lock with its connection; the next tick of any process carries on.
 */
import type { AuditSink } from "../audit/types.ts";
import type { Clock } from "../clock.ts";
import type { Database } from "../db/database.ts";
import type { Logger } from "../log.ts";
import { pendingByStore, runRewrap } from "./rewrap.ts";
import type { ScheduleStore } from "./schedule.ts";
import { RETIRE_GRACE_MS } from "./slice-statements.ts";
import type { ManagedKeyService } from "./service.ts";

export const SCHEDULER_ACTOR = "scheduler";
// Shared by every chronokms process; distinct from the key and migration locks. "chronosc"
const SCHEDULER_LOCK = String(0x6368726f6e6f7363n & 0x7fffffffffffffffn);

export interface SchedulerOptions {
  db: Database;
  keys: ManagedKeyService;
  schedule: ScheduleStore;
  audit?: AuditSink;
  clock: Clock;
  log: Logger;
  /** How often each process looks at the schedule (default 5000 ms). */
  intervalMs?: number;
  /** Records per re-encryption batch (default 500). */
  batchSize?: number;
}

export interface RotationScheduler {
  start(): void;
  /** One pass now (tests; the timer calls the same). Resolves when it is done or skipped. */
  tick(): Promise<TickResult>;
  /** Stops the timer and an ongoing re-encryption between batches, and waits for the pass. */
  stop(): Promise<void>;
}

export interface TickResult {
  /** Another process held the lock, the schedule is absent/disabled, or a pass was already running. */
  skipped: boolean;
  rotated?: { version: number; previous: number | null };
  rewrapped?: number;
  retired: number[];
}

export function createRotationScheduler(o: SchedulerOptions): RotationScheduler {
  const intervalMs = o.intervalMs ?? 5000;
  let timer: ReturnType<typeof setInterval> | undefined;
  let current: Promise<TickResult> | undefined;
  const abort = new AbortController();

  const record = (
    eventType: "KEY_REWRAP_STARTED" | "KEY_REWRAP_FINISHED",
    target: string,
    details: Record<string, unknown>,
  ) => o.audit?.record({ eventType, actor: SCHEDULER_ACTOR, target, success: true, details });

  /** Runs `fn` holding the scheduler lock, or returns undefined when another process holds it. */
  async function withLock<T>(fn: () => Promise<T>): Promise<T | undefined> {
    if (!o.db.pool || o.db.kind !== "postgres") return fn(); // single process: `current` serialises passes
    const client = await o.db.pool.connect();
    let locked = false;
    try {
      const r = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1::bigint) AS locked", [
        SCHEDULER_LOCK,
      ]);
      locked = r.rows[0]?.locked === true;
      if (!locked) return undefined;
      return await fn();
    } finally {
      if (locked) await client.query("SELECT pg_advisory_unlock($1::bigint)", [SCHEDULER_LOCK]).catch(() => {});
      client.release();
    }
  }

  async function pass(): Promise<TickResult> {
    const skipped: TickResult = { skipped: true, retired: [] };
    const first = await o.schedule.get();
    if (!first?.enabled) return skipped;
    const out = await withLock(async (): Promise<TickResult> => {
      const result: TickResult = { skipped: false, retired: [] };
      // Re-read under the lock: the process that held it before may have just rotated.
      const s = await o.schedule.get();
      if (!s?.enabled) return { ...result, skipped: true };
      await o.keys.refresh();
      const now = o.clock.now();
      if (s.rotatingFrom !== null || now >= s.nextDueAt!.getTime()) {
        const active = (await o.keys.active()).version;
        if (s.rotatingFrom !== null && active > s.rotatingFrom) {
          // The rotation committed before its process died: finish the bookkeeping only.
          o.log.info("scheduled rotation found done by a previous run", { from: s.rotatingFrom, active });
        } else {
          await o.schedule.markRotating(active);
          result.rotated = await o.keys.rotate({ actor: SCHEDULER_ACTOR });
          o.log.info("scheduled rotation", result.rotated);
        }
        await o.schedule.rotated(s, now);
      }

      const stores = o.keys.rewrappables();
      const target = (await o.keys.active()).version;
      let pending = 0;
      for (const n of (await pendingByStore(stores, target)).values()) pending += n;
      if (pending > 0 && !abort.signal.aborted) {
        await record("KEY_REWRAP_STARTED", `key:v${target}`, { targetVersion: target, pending });
        const r = await runRewrap(o.keys, stores, { batchSize: o.batchSize ?? 500, signal: abort.signal });
        result.rewrapped = r.moved;
        if (!abort.signal.aborted)
          await record("KEY_REWRAP_FINISHED", `key:v${r.targetVersion}`, {
            targetVersion: r.targetVersion,
            moved: r.moved,
            remaining: r.remaining,
            elapsedMs: Math.round(r.elapsedMs),
          });
        o.log.info("scheduled re-encryption", {
          targetVersion: r.targetVersion,
          moved: r.moved,
          remaining: r.remaining,
        });
      }

      if (s.retireAfterSeconds !== null && !abort.signal.aborted) {
        // Never before the retirement grace (statements of the version may still be in use); retire() refuses earlier anyway.
        const after = Math.max(s.retireAfterSeconds * 1000, RETIRE_GRACE_MS);
        for (const v of await o.keys.versions()) {
          if (v.status !== "decrypt-only" || v.records > 0 || v.rotatedAt === null) continue;
          if (o.clock.now() < Date.parse(v.rotatedAt) + after) continue;
          const r = await o.keys.retire(v.version, { actor: SCHEDULER_ACTOR });
          if (!r.alreadyRetired) result.retired.push(v.version);
        }
      }
      return result;
    });
    return out ?? skipped;
  }

  function tick(): Promise<TickResult> {
    if (current) return current.then(() => ({ skipped: true, retired: [] }));
    current = pass()
      .catch((err): TickResult => {
        o.log.error("scheduled rotation pass failed; the next pass retries", { err });
        return { skipped: true, retired: [] };
      })
      .finally(() => {
        current = undefined;
      });
    return current;
  }

  return {
    start() {
      if (timer) return;
      timer = setInterval(() => void tick(), intervalMs);
      timer.unref?.();
      void tick();
    },
    tick,
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      abort.abort();
      await current;
    },
  };
}
