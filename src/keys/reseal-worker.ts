/** Worker thread body for ResealPool: runs one TokenResealJob per message and posts the new JWEs back. */
import { runTokenResealJob, type TokenResealJob } from "../crypto/reseal.ts";

declare const self: Worker;

self.onmessage = async (e: MessageEvent<{ id: number; job: TokenResealJob }>) => {
  const { id, job } = e.data;
  try {
    self.postMessage({ id, results: await runTokenResealJob(job) });
  } catch (err) {
    self.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
};
