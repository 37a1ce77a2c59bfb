/**
 * Keeps `bun run bench` from rotting: the JSON mode with the tiniest settings (one scenario, one
 * connection, one second, PGlite) must run end to end and print the documented shape. Asserts
 * nothing about the numbers.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";

test("bench --json: one token-read scenario on PGlite plus the Hono baseline, in the documented shape", async () => {
  const proc = Bun.spawn(
    [
      "bun",
      join(import.meta.dir, "../scripts/bench.ts"),
      "--json",
      "--quick",
      "--db=pglite",
      "--sections=http,hello",
      "--scenarios=tokenRead",
      "--concurrency=1",
      "--duration=1",
      "--seed=20",
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`bench exited ${code}: ${err.slice(-1500)}`);
  const r = JSON.parse(out.trim());
  expect(Object.keys(r).sort()).toEqual(["baselines", "machine", "ratios", "scenarios", "settings"]);
  expect(r.machine.cores).toBeGreaterThan(0);
  const s = r.scenarios["tokenRead/pglite/c1"];
  expect(s).toMatchObject({ db: "pglite", concurrency: 1, errors: 0 });
  for (const k of ["reqPerSec", "p50Ms", "p99Ms"]) expect(typeof s[k]).toBe("number");
  expect(s.reqPerSec).toBeGreaterThan(0);
  expect(r.baselines.helloHono.c1.reqPerSec).toBeGreaterThan(0);
  expect(typeof r.ratios.tokenReadVsHello).toBe("number");
  expect(r.ratios).toHaveProperty("cryptoVsRaw");
}, 60_000);
