/** Worker thread body for ResealPool: runs one ResealJob per message and posts the new JWEs back. */
import { runResealJob, type ResealJob } from "../crypto/reseal.ts";

declare const self: Worker;

self.onmessage = async (e: MessageEvent<{ id: number; job: ResealJob }>) => {
  const { id, job } = e.data;
  try {
    self.postMessage({ id, results: await runResealJob(job) });
  } catch (err) {
    self.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
};
