/**
 * A mixed load against a running service (token reads, token writes, granted and denied access
 * requests), with every response judged as it arrives: correct, or a 503 in the single error shape
 * that carries no secret. Used by the database-fault and two-process tests.
 */
import { callApi, provision } from "../test/tokens/helpers.ts";

export interface LoadKeys {
  writer: string;
  reader: string;
  stranger: string;
}

/** Tokens the load reads (stored before it starts) and the value each must decrypt to. */
export const SEEDED_TOKENS = Array.from({ length: 8 }, (_, i) => ({
  integration: "gmail",
  userId: `load-${i}`,
  accessToken: `seeded-access-${i}-${crypto.randomUUID()}`,
}));

export async function prepareLoad(base: string, adminKey: string, suffix = ""): Promise<LoadKeys> {
  const keys = await provision(base, adminKey, suffix);
  for (const t of SEEDED_TOKENS) {
    const res = await callApi(base, keys.writer, "PUT", `/v1/tokens/${t.integration}/${t.userId}`, {
      accessToken: t.accessToken,
      refreshToken: `refresh-${t.accessToken}`,
      expiresAt: Date.now() + 86_400_000,
    });
    if (res.status !== 201 && res.status !== 200)
      throw new Error(`seeding ${t.userId}: ${res.status} ${await res.text()}`);
  }
  return keys;
}

/** POST /v1/access-requests for the hour that ended an hour ago (its slice keys exist in every run). */
export function requestPastHour(
  base: string,
  apiKey: string,
  opts: { purpose?: string; signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(`${base}/v1/access-requests`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({
      resource: { type: "timeslice" },
      timeRange: { start: Date.now() - 7_200_000, end: Date.now() - 3_600_000 },
      ...(opts.purpose ? { purpose: opts.purpose } : {}),
    }),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

export interface LoadStats {
  total: number;
  correct: number;
  unavailable: number;
  /** Wrong answers: anything but correct or a clean 503 (each with a description). */
  wrong: string[];
  /** Token reads that returned a plaintext (each must have a durable ACCESS_GRANTED row). */
  tokenReads: number;
  grants: number;
  /** Time and outcome of every response, for recovery measurements. */
  timeline: Array<{ at: number; ok: boolean }>;
}

/** Strings that must never appear in a 503 (or any error) body. */
function leaks(text: string, secrets: string[]): string | undefined {
  for (const s of secrets) if (text.includes(s)) return `${s.slice(0, 12)}…`;
  for (const marker of [
    "privateJwk",
    '"seed"',
    '"d":',
    "accessToken",
    "refreshToken",
    "ckms_",
    "-----BEGIN",
    "stack",
    "postgres://",
  ])
    if (text.includes(marker)) return marker;
  return undefined;
}

function cleanUnavailable(status: number, text: string, secrets: string[]): string | undefined {
  if (status !== 503) return `status ${status}`;
  let body: { error?: { code?: unknown; message?: unknown; requestId?: unknown } } & Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    return "503 body is not JSON";
  }
  if (
    Object.keys(body).join() !== "error" ||
    body.error?.code !== "SERVICE_UNAVAILABLE" ||
    typeof body.error.message !== "string"
  )
    return `503 not in the error shape: ${text.slice(0, 200)}`;
  const leak = leaks(text, secrets);
  return leak ? `503 body contains ${leak}` : undefined;
}

/**
 * Runs `workers` concurrent loops against the URLs (round robin) until `stop()` resolves the
 * returned promise. Writes go to a per-worker token; a read of it must return the last
 * acknowledged value or one whose write got a 503 (an unacknowledged write may or may not land).
 */
export function runLoad(urls: string[], keys: LoadKeys, opts: { workers: number; timeoutMs?: number }) {
  const stats: LoadStats = { total: 0, correct: 0, unavailable: 0, wrong: [], tokenReads: 0, grants: 0, timeline: [] };
  let running = true;
  const secrets = SEEDED_TOKENS.map((t) => t.accessToken);
  const worker = async (w: number) => {
    let acked: string | undefined;
    const maybe = new Set<string>();
    let n = 0;
    while (running) {
      const base = urls[(w + n++) % urls.length]!;
      const roll = Math.random();
      const record = (ok: boolean, unavailable: boolean, what?: string) => {
        stats.total++;
        if (ok) stats.correct++;
        else if (unavailable) stats.unavailable++;
        else stats.wrong.push(what ?? "wrong");
        stats.timeline.push({ at: Date.now(), ok });
      };
      try {
        const signal = AbortSignal.timeout(opts.timeoutMs ?? 15_000);
        if (roll < 0.4) {
          const t = SEEDED_TOKENS[Math.floor(Math.random() * SEEDED_TOKENS.length)]!;
          const res = await fetch(`${base}/v1/tokens/${t.integration}/${t.userId}`, {
            headers: { authorization: `Bearer ${keys.reader}` },
            signal,
          });
          const text = await res.text();
          if (res.status === 200) {
            stats.tokenReads++;
            const ok = (JSON.parse(text) as { accessToken?: string }).accessToken === t.accessToken;
            record(ok, false, ok ? undefined : `token read returned a wrong value`);
          } else {
            const why = cleanUnavailable(res.status, text, secrets);
            record(false, !why, `token read: ${why}`);
          }
        } else if (roll < 0.65) {
          const res = await requestPastHour(base, keys.reader, { purpose: "load", signal });
          const text = await res.text();
          if (res.status === 201) {
            stats.grants++;
            const b = JSON.parse(text) as { granted?: boolean; keys?: unknown[]; id?: string };
            const ok = b.granted === true && Array.isArray(b.keys) && b.keys.length > 0 && typeof b.id === "string";
            record(ok, false, ok ? undefined : `grant without keys: ${text.slice(0, 120)}`);
          } else {
            const why = cleanUnavailable(res.status, text, secrets);
            record(false, !why, `grant: ${why}: ${text.slice(0, 120)}`);
          }
        } else if (roll < 0.8) {
          const res = await requestPastHour(base, keys.stranger, { signal });
          const text = await res.text();
          if (res.status === 403) {
            const b = JSON.parse(text) as { granted?: boolean; error?: { code?: string }; keys?: unknown };
            const ok = b.granted === false && b.error?.code === "ACCESS_DENIED" && b.keys === undefined;
            record(ok, false, ok ? undefined : `denial malformed: ${text.slice(0, 120)}`);
          } else {
            const why = cleanUnavailable(res.status, text, secrets);
            record(false, !why, `denial: ${why}: ${text.slice(0, 120)}`);
          }
        } else if (roll < 0.9) {
          const value = `w${w}-${crypto.randomUUID()}`;
          secrets.push(value);
          const res = await fetch(`${base}/v1/tokens/github/writer-${w}`, {
            method: "PUT",
            headers: { authorization: `Bearer ${keys.writer}`, "content-type": "application/json" },
            body: JSON.stringify({ accessToken: value }),
            signal,
          });
          const text = await res.text();
          if (res.status === 200 || res.status === 201) {
            acked = value;
            maybe.clear();
            record(true, false);
          } else {
            maybe.add(value);
            const why = cleanUnavailable(res.status, text, secrets);
            record(false, !why, `token write: ${why}`);
          }
        } else if (acked) {
          const res = await fetch(`${base}/v1/tokens/github/writer-${w}`, {
            headers: { authorization: `Bearer ${keys.reader}` },
            signal,
          });
          const text = await res.text();
          if (res.status === 200) {
            stats.tokenReads++;
            const got = (JSON.parse(text) as { accessToken?: string }).accessToken ?? "";
            const ok = got === acked || maybe.has(got);
            if (ok && got !== acked) {
              acked = got;
              maybe.clear();
            }
            record(
              ok,
              false,
              ok ? undefined : `read after write returned neither the acknowledged nor a pending value`,
            );
          } else {
            const why = cleanUnavailable(res.status, text, secrets);
            record(false, !why, `read after write: ${why}`);
          }
        }
      } catch (err) {
        stats.total++;
        stats.wrong.push(`request failed: ${String(err).slice(0, 120)}`);
        stats.timeline.push({ at: Date.now(), ok: false });
      }
    }
  };
  const done = Promise.all(Array.from({ length: opts.workers }, (_, w) => worker(w)));
  return {
    stats,
    async stop() {
      running = false;
      await done;
      return stats;
    },
  };
}

/**
 * Milliseconds from `since` until the first response after which every response was correct
 * (the load recovered by itself); -1 if it never did.
 */
export function recoveryMs(stats: LoadStats, since: number): number {
  const after = stats.timeline.filter((t) => t.at >= since);
  let lastBad = -1;
  after.forEach((t, i) => {
    if (!t.ok) lastBad = i;
  });
  if (lastBad === after.length - 1) return -1;
  return lastBad < 0 ? 0 : after[lastBad + 1]!.at - since;
}
