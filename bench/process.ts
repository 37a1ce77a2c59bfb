/**
 * Child processes for the bench: spawn, wait until the process names the URL it listens on (in
 * its output, written to a file so a chatty access log can never block on a full pipe), stop.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Spawned {
  url: string;
  pid: number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export async function spawnAndWaitForUrl(
  cmd: string[],
  opts: { env: Record<string, string | undefined>; match: RegExp; timeoutMs?: number; cwd?: string },
): Promise<Spawned> {
  const dir = mkdtempSync(join(tmpdir(), "chronokms-bench-proc-"));
  const outPath = join(dir, "out.log");
  const proc = Bun.spawn(cmd, { env: opts.env, cwd: opts.cwd, stdout: Bun.file(outPath), stderr: "pipe" });
  const stderr = new Response(proc.stderr).text();
  const deadline = performance.now() + (opts.timeoutMs ?? 60_000);
  let url: string | undefined;
  while (!url) {
    let out = "";
    try {
      out = readFileSync(outPath, "utf8");
    } catch {}
    url = opts.match.exec(out)?.[1];
    if (url) break;
    if (proc.exitCode !== null || performance.now() > deadline) {
      proc.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${cmd.join(" ")} did not start: ${(await stderr).trim().slice(-800) || out.slice(-800)}`);
    }
    await Bun.sleep(50);
  }
  return {
    url,
    pid: proc.pid,
    async stop(graceMs = 15_000) {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
        await proc.exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
