/**
 * Shared pieces of the reliability suite: sizes from the environment (so CI can run a documented
 * subset), real service processes (`bun src/index.ts`) on a test database, audit verification and
 * the one-line figure each test prints.
 */
import { appendFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../src/db/migration-files.ts";
import { openDatabase, type Database } from "../src/db/database.ts";
import { loadMasterPublicKeys, verifyAuditLog, type VerifyResult } from "../src/audit/verify.ts";
import { liveChains } from "../src/audit/writer.ts";
import { readAnchorFile } from "../src/audit/anchors.ts";
import { TEST_ADMIN_KEY, TEST_KEK } from "../test/support/app.ts";
import { testMacKey } from "../test/audit/helpers.ts";

/** A whole number from the environment (RELIABILITY_*), or the default of the full suite. */
export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  if (!/^\d+$/.test(v)) throw new Error(`${name}: expected a whole number, got "${v}"`);
  return Number(v);
}

/**
 * Prints the test's one-line result (`fuzz: 10000 requests, 0 5xx`), and appends it to
 * RELIABILITY_FIGURES_FILE when set so a runner can collect every figure in one place.
 */
export function figure(line: string): void {
  console.log(`[reliability] ${line}`);
  const file = process.env.RELIABILITY_FIGURES_FILE;
  if (file) appendFileSync(file, `${line}\n`);
}

export type Proc = ReturnType<typeof Bun.spawn>;

export interface ServiceProcess {
  proc: Proc;
  url: string;
  port: number;
  /** Everything the process logged so far (stdout and stderr). */
  stderr(): Promise<string>;
  /** SIGKILL, no shutdown hooks. */
  kill(): Promise<void>;
  /** SIGTERM and wait for a clean exit. */
  stop(): Promise<void>;
}

let nextPort = 21000 + Math.floor(Math.random() * 20000);
function freshPort(): number {
  nextPort = nextPort >= 60000 ? 21000 : nextPort + 1;
  return nextPort;
}

/** The anchor log service processes of one PostgreSQL test database share (a temp file, not the project's .data). */
export function anchorFileFor(databaseUrl: string): string {
  return join(tmpdir(), `chronokms-anchors-${Bun.hash(databaseUrl).toString(36)}.jsonl`);
}

export function serviceEnv(
  databaseUrl: string | undefined,
  port: number,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ...(databaseUrl ? { AUDIT_ANCHOR_FILE: anchorFileFor(databaseUrl) } : {}),
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    NODE_ENV: "test",
    LOG_LEVEL: "warn",
    PORT: String(port),
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
    BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY,
    AUTH_FAILURES_PER_MINUTE: "100000",
    SHUTDOWN_GRACE_MS: "2000",
    ...extra,
  };
}

/** Starts `bun src/index.ts`; resolves once /readyz answers 200 (unless `wait: false`). */
export async function startService(
  databaseUrl: string | undefined,
  opts: { env?: Record<string, string>; wait?: boolean; timeoutMs?: number } = {},
): Promise<ServiceProcess> {
  const port = freshPort();
  // The log goes to a file so it can be read while the process runs (and after a SIGKILL).
  const logFile = join(tmpdir(), `chronokms-reliability-${process.pid}-${port}.log`);
  const proc = Bun.spawn([process.execPath, "src/index.ts"], {
    cwd: projectRoot,
    env: serviceEnv(databaseUrl, port, opts.env),
    stdout: Bun.file(logFile),
    stderr: Bun.file(logFile),
  });
  const s: ServiceProcess = {
    proc,
    port,
    url: `http://127.0.0.1:${port}`,
    stderr: async () => {
      try {
        return readFileSync(logFile, "utf8");
      } catch {
        return "";
      }
    },
    async kill() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
  if (opts.wait !== false) await waitReady(s, opts.timeoutMs);
  return s;
}

export async function waitReady(s: ServiceProcess, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (s.proc.exitCode !== null)
      throw new Error(`service exited early (${s.proc.exitCode}): ${(await s.stderr()).slice(-2000)}`);
    try {
      if ((await fetch(`${s.url}/readyz`)).status === 200) return;
    } catch {}
    await Bun.sleep(50);
  }
  throw new Error(`not ready at ${s.url} within ${ms} ms`);
}

/** Verifies every audit chain of a database through its own connection (against an anchor log when given). */
export async function verifyAudit(db: Database, anchorFile?: string): Promise<VerifyResult> {
  const anchors = anchorFile ? await readAnchorFile(anchorFile) : { entries: [], malformed: [] };
  return verifyAuditLog(db, {
    ...(await loadMasterPublicKeys(db, testMacKey)),
    liveChains: (ids) => liveChains(db, ids),
    anchors: anchors.entries,
    malformedAnchorLines: anchors.malformed,
  });
}

/** Opens a database by URL for checks from the test process (PostgreSQL or an on-disk PGlite). */
export async function openForCheck(
  target: { kind: "postgres"; url: string } | { kind: "pglite"; dataDir: string },
): Promise<Database> {
  return openDatabase(target);
}

/** `fetch` that never throws: a refused or reset connection is status 0. */
export async function tryFetch(url: string, init?: RequestInit): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(url, init);
    return { status: res.status, text: await res.text() };
  } catch (err) {
    return { status: 0, text: String(err) };
  }
}

export function bearer(key: string | null, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
