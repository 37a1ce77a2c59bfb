/**
 * The README's tour, executed: its ```sh blocks (scripts/lib/readme-tour.ts) run in order in one
 * bash, in a temporary working copy of the project with a fresh embedded database and a free
 * port, exactly as a new user would paste them. It must reach a policy denial, a granted
 * time-slice request with curl, decrypted readings through the SDK, a token read and an intact
 * audit log, and stop the service it started.
 */
import { afterAll, expect, test } from "bun:test";
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../src/db/migration-files.ts";
import { readTour } from "../scripts/lib/readme-tour.ts";
import { freshPort } from "./support/processes.ts";

const work = mkdtempSync(join(tmpdir(), "chronokms-tour-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("the README tour, pasted into bash, reaches a granted access request and a decrypted reading", async () => {
  // A working copy: the project's files (no .data, no logs), the installed dependencies linked.
  for (const entry of [
    "package.json",
    "bunfig.toml",
    "tsconfig.json",
    "prisma.config.ts",
    "README.md",
    "src",
    "scripts",
    "examples",
    "prisma",
  ]) {
    cpSync(join(projectRoot, entry), join(work, entry), { recursive: true });
  }
  symlinkSync(join(projectRoot, "node_modules"), join(work, "node_modules"));

  const blocks = readTour(projectRoot);
  // The harness adds only: stop on the first failure, and never leave the service running.
  const script = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT", ...blocks].join("\n\n");
  const port = freshPort();
  const p = Bun.spawn(["bash", "-c", script], {
    cwd: work,
    // A clean environment like a new user's shell: no KEK (a development one is made), no DATABASE_URL.
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PORT: String(port) },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), 150_000);
  const [code, stdout, stderr] = await Promise.all([
    p.exited,
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
  ]);
  clearTimeout(timer);
  const log = existsSync(join(work, "chronokms.log")) ? await Bun.file(join(work, "chronokms.log")).text() : "";
  if (code !== 0) console.error(`tour failed (${code})\nstdout:\n${stdout}\nstderr:\n${stderr}\nservice log:\n${log}`);
  expect(code).toBe(0);

  // 1: the seed printed the keys once, and the tour loaded them.
  expect(stdout).toMatch(/^export CHRONOKMS_READER_KEY=ckms_/m);
  expect(stdout).toMatch(/demo-business-hours\s+time-based\s+DISABLED/);
  expect(existsSync(join(work, "seed.out"))).toBe(false);
  // 2: the JWKS.
  expect(stdout).toContain('"keys":[{');
  // 3: without a purpose denied by the purpose policy; with one granted, keys included.
  expect(stdout).toMatch(/"granted":false,"error":\{"code":"ACCESS_DENIED"/);
  expect(stdout).toMatch(/"granted":true,.*"keys":\[\{"slice":/);
  // …opening exactly the hour of whole minutes asked for: 60 one-minute slices, nothing more.
  const covered = /"slices":\{"from":(\d+),"to":(\d+)\},"covered":\{"start":"([^"]+)","end":"([^"]+)"\}/.exec(stdout);
  expect(covered).not.toBeNull();
  expect(Number(covered![2]) - Number(covered![1]) + 1).toBe(60);
  expect(Date.parse(covered![4]!) - Date.parse(covered![3]!)).toBe(3_600_000 - 1);
  // 4: the SDK decrypted exactly the granted slice (60 s by default).
  expect(stdout).toContain("analyst: decrypted 60 readings");
  expect(stdout).toContain("60 outside the grant refused");
  expect(stdout).toMatch(/analyst: first reading \S+ [\d.]+ °C/);
  // 5: a demo token read, and an intact audit log.
  expect(stdout).toContain('"accessToken":"demo-gmail-access-token"');
  expect(stdout).toContain('"valid":true');
  // 6: the service stopped cleanly (kill %1 && wait).
  expect(log).toContain(`"msg":"stopped"`);
}, 180_000);
