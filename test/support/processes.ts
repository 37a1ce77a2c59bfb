/**
 * Child processes for tests: scripts (`bun scripts/….ts`, `bun run …`) run to completion, and real
 * service processes (`bun src/index.ts`) for tests that need more than one process or a SIGKILL: a
 * fresh loopback port each, the log in a file readable while it runs and after a kill, and /readyz
 * polled until it answers. Used by test/ and test-reliability/.
 */
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../src/db/migration-files.ts";
import { TEST_ADMIN_KEY, TEST_KEK } from "./app.ts";

export type Proc = ReturnType<typeof Bun.spawn>;

/**
 * A child's environment: only PATH and HOME of ours (no developer DATABASE_URL or KEK leaks in),
 * NODE_ENV=test and the test KEK, then `env`.
 */
export function childEnv(env: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    NODE_ENV: "test",
    MASTER_KEY_ENCRYPTION_KEY: TEST_KEK,
    ...env,
  };
}

export interface BunRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `bun <args>` in the project root to its end with childEnv(env), collecting both streams. */
export async function runBun(args: string[], env: Record<string, string> = {}): Promise<BunRun> {
  const p = Bun.spawn([process.execPath, ...args], {
    cwd: projectRoot,
    env: childEnv(env),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stdout, stderr] = await Promise.all([
    p.exited,
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
  ]);
  return { code, stdout, stderr };
}

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
/**
 * The next port nothing listens on right now. Other test runs on the machine spawn services too,
 * so a port is probed before use; startService still retries if it is taken in between.
 */
export function freshPort(): number {
  for (let tries = 0; tries < 200; tries++) {
    nextPort = nextPort >= 60000 ? 21000 : nextPort + 1;
    try {
      Bun.serve({ hostname: "127.0.0.1", port: nextPort, fetch: () => new Response() }).stop(true);
      return nextPort;
    } catch {}
  }
  throw new Error("no free port found");
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
  return childEnv({
    ...(databaseUrl ? { AUDIT_ANCHOR_FILE: anchorFileFor(databaseUrl) } : {}),
    LOG_LEVEL: "warn",
    PORT: String(port),
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    BOOTSTRAP_ADMIN_KEY: TEST_ADMIN_KEY,
    AUTH_FAILURES_PER_MINUTE: "100000",
    SHUTDOWN_GRACE_MS: "2000",
    ...extra,
  });
}

/**
 * Starts `bun src/index.ts`; resolves once /readyz answers 200 (unless `wait: false`). A service
 * that exits because its port was taken meanwhile is started again on another one.
 */
export async function startService(
  databaseUrl: string | undefined,
  opts: { env?: Record<string, string>; wait?: boolean; timeoutMs?: number } = {},
): Promise<ServiceProcess> {
  for (let attempt = 1; ; attempt++) {
    const s = spawnService(databaseUrl, opts.env);
    if (opts.wait === false) return s;
    try {
      await waitReady(s, opts.timeoutMs);
      return s;
    } catch (err) {
      if (attempt >= 3 || s.proc.exitCode === null || !(await s.stderr()).includes("already in use")) throw err;
    }
  }
}

function spawnService(databaseUrl: string | undefined, env: Record<string, string> | undefined): ServiceProcess {
  const port = freshPort();
  // The log goes to a file so it can be read while the process runs (and after a SIGKILL).
  const logFile = join(tmpdir(), `chronokms-reliability-${process.pid}-${port}.log`);
  const proc = Bun.spawn([process.execPath, "src/index.ts"], {
    cwd: projectRoot,
    env: serviceEnv(databaseUrl, port, env),
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
