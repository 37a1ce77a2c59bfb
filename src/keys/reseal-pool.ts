/**
 * A few worker threads that re-seal token envelopes in parallel during rotation (a v1 envelope costs an
 * ECDH to open, ~150 µs; a v2 one an HKDF + AES-GCM, ~30 µs). Workers hold no keys of their
 * own: each job carries just the slice keys its items need. A worker that dies rejects its jobs (the
 * caller's batch fails and its compare-and-set write never happens, so nothing is lost) and is
 * replaced on the next job.
 */
import type { TokenResealJob } from "../crypto/reseal.ts";

interface Pending {
  resolve(r: Array<string | null>): void;
  reject(e: Error): void;
}

interface Slot {
  worker: Bun.Worker;
  pending: Map<number, Pending>;
}

export class ResealPool {
  readonly size: number;
  #slots: Array<Slot | undefined>;
  #next = 0;
  #closed = false;

  constructor(size: number) {
    this.size = Math.max(1, Math.floor(size));
    this.#slots = new Array(this.size).fill(undefined);
  }

  run(job: TokenResealJob): Promise<Array<string | null>> {
    if (this.#closed) return Promise.reject(new Error("reseal pool closed"));
    // Least loaded slot, so a slow worker does not queue up work the other could do.
    let best = 0;
    for (let i = 1; i < this.size; i++)
      if ((this.#slots[i]?.pending.size ?? 0) < (this.#slots[best]?.pending.size ?? 0)) best = i;
    const slot = this.#slots[best] ?? this.#spawn(best);
    this.#slots[best] = slot;
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.ref();
      slot.worker.postMessage({ id, job });
    });
  }

  #spawn(i: number): Slot {
    // Referenced only while it has jobs: an idle pool never keeps a script or server process alive.
    const worker = new Worker(new URL("./reseal-worker.ts", import.meta.url).href, { ref: false }) as Bun.Worker;
    const slot: Slot = { worker, pending: new Map() };
    worker.addEventListener("message", (e) => {
      const reply = (e as MessageEvent<{ id: number; results?: Array<string | null>; error?: string }>).data;
      const p = slot.pending.get(reply.id);
      if (!p) return;
      slot.pending.delete(reply.id);
      if (slot.pending.size === 0) worker.unref();
      if (reply.results) p.resolve(reply.results);
      else p.reject(new Error(`reseal worker: ${reply.error ?? "no result"}`));
    });
    const fail = (why: string) => {
      if (this.#slots[i] === slot) this.#slots[i] = undefined;
      for (const p of slot.pending.values()) p.reject(new Error(`reseal worker ${why}`));
      slot.pending.clear();
      worker.terminate();
    };
    worker.addEventListener("error", (e) => fail(`failed: ${(e as ErrorEvent).message}`));
    worker.addEventListener("close", () => fail("exited"));
    return slot;
  }

  close(): void {
    this.#closed = true;
    for (const [i, s] of this.#slots.entries()) {
      if (!s) continue;
      this.#slots[i] = undefined;
      for (const p of s.pending.values()) p.reject(new Error("reseal pool closed"));
      s.worker.terminate();
    }
  }
}
