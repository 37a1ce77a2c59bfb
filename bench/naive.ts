/**
 * The naive baseline: what a user would hand-roll instead of chronokms (the token-storage seed's
 * design). Bun + Hono, GET /v1/tokens/:integration/:userId → the project's Prisma client on
 * @prisma/adapter-pg (a `pg` pool of 10, the service's default DATABASE_POOL_SIZE) →
 * `prisma.oAuthToken.findUnique` on the (userId, integration) unique key → WebCrypto AES-256-GCM
 * decrypt of both token fields under one static key imported at start → JSON. No API key, no
 * policy, no audit row, no access log. Its own process (bench/naive-server.ts, which prints `listening
 * <url>` like bench/hello.ts), on the same PostgreSQL bench database as the service.
 *
 * Fairness: it reads rows of the service's own oauth_tokens table (same table, same unique index,
 * as many rows as the tokenRead scenario reads; shorter ciphertexts than token envelopes), seeded
 * under the integration "naive" with base64(iv ‖ AES-GCM ciphertext ‖ tag) of the same plaintexts;
 * wrk sends it the tokenRead request list with only the integration segment changed, at the same
 * concurrencies and duration after the same warm-up, right after tokenRead on the same database.
 * As the seed design does (and as issue #13 states the baseline), it decrypts both fields where a
 * chronokms read opens only the access token (a read never releases the refresh token). That
 * second decrypt costs the baseline ~7 µs (Bun WebCrypto, 160-byte field, this machine) of the
 * ~280 µs of CPU it spends per request: a ~3% handicap, small next to the ratio being measured.
 */
import { join } from "node:path";
import type { Database } from "../src/db/database.ts";
import { spawnAndWaitForUrl, type Spawned } from "./process.ts";
import { benchAccessToken, benchRefreshToken, benchUserId } from "./seal-job.ts";
import { insertTokenRows } from "./seed.ts";
import type { LoadRequest } from "./wrk.ts";

export const NAIVE_INTEGRATION = "naive";

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/** A fresh random AES-256 key, hex. */
export function naiveKeyHex(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
}

/** Seeds users 0..count-1 of NAIVE_INTEGRATION: the plaintexts the service's rows hold, AES-GCM under `keyHex`. */
export async function seedNaiveTokens(db: Database, keyHex: string, count: number): Promise<void> {
  const key = await crypto.subtle.importKey("raw", Buffer.from(keyHex, "hex"), "AES-GCM", false, ["encrypt"]);
  const seal = async (text: string) => {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, new TextEncoder().encode(text)),
    );
    const out = new Uint8Array(12 + ct.length);
    out.set(iv);
    out.set(ct, 12);
    return b64(out);
  };
  for (let start = 0; start < count; start += 4000) {
    const rows = [];
    for (let i = start; i < Math.min(count, start + 4000); i++)
      rows.push({
        userId: benchUserId(i),
        accessToken: await seal(benchAccessToken(i)),
        refreshToken: await seal(benchRefreshToken(i)),
        keyVersion: 1,
      });
    await insertTokenRows(db, NAIVE_INTEGRATION, rows);
  }
}

/** The tokenRead scenario's request list, pointed at the naive rows (same users, same order). */
export function naiveRequests(tokenReadPaths: LoadRequest[]): LoadRequest[] {
  // ?purpose= is kept: the same bytes on the wire.
  return tokenReadPaths.map((r) => ({
    method: "GET",
    path: r.path.replace(/^\/v1\/tokens\/[^/]+\//, `/v1/tokens/${NAIVE_INTEGRATION}/`),
  }));
}

export function startNaive(databaseUrl: string, keyHex: string, bunArgs: string[] = []): Promise<Spawned> {
  return spawnAndWaitForUrl(["bun", ...bunArgs, join(import.meta.dir, "naive-server.ts")], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: "production",
      DATABASE_URL: databaseUrl,
      NAIVE_KEY: keyHex,
    },
    match: /^listening (http:\/\/\S+)$/m,
  });
}
