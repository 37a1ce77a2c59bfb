/**
 * The load generator: wrk (Debian's package, C, one thread) in its own process, driven by a
 * generated Lua script that cycles through a list of prepared requests and prints one JSON line.
 * wrk is used rather than a Node generator because on a 2-core machine every cycle the generator
 * spends is taken from the service under test; wrk spends the fewest.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface LoadRequest {
  method: "GET" | "POST" | "PUT";
  path: string;
  body?: string;
}

export interface LoadSpec {
  baseUrl: string;
  /** Cycled through in order, each connection starting at a random offset. */
  requests: LoadRequest[];
  headers?: Record<string, string>;
  connections: number;
  durationSec: number;
  /** When given (Linux), the server's CPU time over the run is reported per request. */
  serverPid?: number;
}

export interface LoadResult {
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Socket errors, timeouts and responses that are not 2xx. */
  errors: number;
  /** Server process CPU (user + system) per request, µs; from /proc, 10 ms resolution. */
  serverCpuUsPerReq?: number;
}

/** utime + stime of a process in µs, from /proc/<pid>/stat (clock ticks of 10 ms), or undefined off Linux. */
function cpuUs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10_000; // fields 14 and 15, counted after the comm field
  } catch {
    return undefined;
  }
}

/** Makes sure `wrk` is on PATH, installing Debian's package when running as root; else one clear error. */
export async function ensureWrk(): Promise<string> {
  const found = Bun.which("wrk");
  if (found) return found;
  if (process.getuid?.() !== 0)
    throw new Error("wrk is not installed; install it (Debian: apt-get install wrk) and run the bench again");
  console.error("bench: installing wrk from Debian (apt-get install wrk)…");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const sh = (cmd: string[]) => Bun.spawnSync(cmd, { env, stdout: "ignore", stderr: "pipe" });
  let r = sh(["apt-get", "install", "-y", "-qq", "wrk"]);
  if (r.exitCode !== 0) {
    sh(["apt-get", "update", "-qq"]);
    r = sh(["apt-get", "install", "-y", "-qq", "wrk"]);
  }
  const path = Bun.which("wrk");
  if (!path)
    throw new Error(`could not install wrk: ${r.stderr.toString().trim().split("\n").at(-1) ?? "apt-get failed"}`);
  return path;
}

const luaString = (s: string) => JSON.stringify(s); // a JSON string literal is a valid Lua string for our ASCII inputs

function luaScript(spec: LoadSpec): string {
  const reqs = spec.requests
    .map((r) => `{${luaString(r.method)},${luaString(r.path)},${r.body === undefined ? "nil" : luaString(r.body)}}`)
    .join(",\n");
  const anyBody = spec.requests.some((r) => r.body !== undefined);
  // wrk.format(…, headers, …) would replace wrk.headers wholesale, so every header is global.
  const headers = Object.entries({ ...spec.headers, ...(anyBody ? { "Content-Type": "application/json" } : {}) })
    .map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`)
    .join("\n");
  return `
local reqs = {
${reqs}
}
${headers}
local n = #reqs
local i = 0
init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  i = math.random(0, n - 1)
end
request = function()
  i = i + 1
  local r = reqs[(i % n) + 1]
  if r[3] ~= nil then
    return wrk.format(r[1], r[2], nil, r[3])
  end
  return wrk.format(r[1], r[2])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%.0f,"p99":%.0f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
`;
}

/** Runs wrk once against `spec` and parses its summary line. */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  if (spec.requests.length === 0) throw new Error("runLoad: no requests");
  const wrk = await ensureWrk();
  const dir = mkdtempSync(join(tmpdir(), "chronokms-wrk-"));
  try {
    const script = join(dir, "load.lua");
    writeFileSync(script, luaScript(spec));
    const connections = Math.max(1, spec.connections);
    const cpu0 = cpuUs(spec.serverPid);
    const proc = Bun.spawn(
      [
        wrk,
        "-t",
        "1",
        "-c",
        String(connections),
        "-d",
        `${spec.durationSec}s`,
        "--timeout",
        "10s",
        "-s",
        script,
        spec.baseUrl,
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    const cpu1 = cpuUs(spec.serverPid);
    const line = out.split("\n").find((l) => l.startsWith("WRKJSON "));
    if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}): ${(err || out).trim().slice(0, 500)}`);
    const j = JSON.parse(line.slice("WRKJSON ".length)) as Record<string, number>;
    const n = j.requests!;
    return {
      reqPerSec: Math.round((n * 1e6) / j.durationUs!),
      p50Ms: Math.round(j.p50! / 10) / 100,
      p99Ms: Math.round(j.p99! / 10) / 100,
      requests: n,
      errors: j.connect! + j.read! + j.write! + j.status! + j.timeout!,
      ...(cpu0 !== undefined && cpu1 !== undefined && n > 0
        ? { serverCpuUsPerReq: Math.round((cpu1 - cpu0) / n) }
        : {}),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
