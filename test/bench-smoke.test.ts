/**
 * Keeps `bun run bench` from rotting: the JSON mode at smoke size (one scenario, one short
 * concurrency, a few sequential grants, a tiny rewrap) must run every section issue #13's figures
 * come from — the service on PostgreSQL and PGlite, the bare Hono and naive baselines, grants and
 * the floor, rewrap — and its last stdout line must be one JSON object carrying every figure as a
 * finite number. Asserts nothing about the numbers themselves.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";

test("bench --json at smoke size: every section behind issue #13's ratios runs; its last line has them all", async () => {
  const proc = Bun.spawn(
    [
      "bun",
      join(import.meta.dir, "../scripts/bench.ts"),
      "--json",
      "--quick",
      "--db=both",
      "--sections=hello,http,naive,grants,scaling",
      "--scenarios=tokenRead",
      "--concurrency=8",
      "--duration=1",
      "--seed=40",
      "--iterations=4",
      "--sizes=none",
      "--rewrap=200",
      "--audit-rows=200",
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`bench exited ${code}: ${err.slice(-1500)}`);
  const r = JSON.parse(out.trim().split("\n").at(-1)!);
  for (const k of ["baselines", "machine", "ratios", "scenarios", "settings", "floor", "grants", "scaling"])
    expect(r).toHaveProperty(k);
  expect(r.machine.cores).toBeGreaterThan(0);
  for (const db of ["postgres", "pglite"]) {
    const s = r.scenarios[`tokenRead/${db}/c8`];
    expect(s).toMatchObject({ db, concurrency: 8, errors: 0 });
    expect(s.reqPerSec).toBeGreaterThan(0);
    for (const range of ["1s", "1h", "24h"]) expect(r.grants[db][range].iterations).toBe(4);
  }
  expect(r.baselines.helloHono.c8.reqPerSec).toBeGreaterThan(0);
  expect(r.baselines.naive.c8).toMatchObject({ db: "postgres", errors: 0 });
  expect(r.ratios).toHaveProperty("cryptoVsRaw");

  const figures: Record<string, unknown> = {
    "ratios.tokenReadVsHello": r.ratios.tokenReadVsHello,
    "ratios.tokenReadVsNaive": r.ratios.tokenReadVsNaive,
    "ratios.pgliteVsPostgres.tokenRead": r.ratios.pgliteVsPostgres.tokenRead,
    "ratios.pgliteVsPostgres.grant": r.ratios.pgliteVsPostgres.grant,
    'ratios.grantVsFloor["1s"]': r.ratios.grantVsFloor["1s"],
    'ratios.grantVsFloor["1h"]': r.ratios.grantVsFloor["1h"],
    'ratios.grantVsFloor["24h"]': r.ratios.grantVsFloor["24h"],
    'ratios.grantVsFloorPglite["1h"]': r.ratios.grantVsFloorPglite["1h"],
    tokenReadCpuUs: r.tokenReadCpuUs,
    rewrapPerSecond: r.rewrapPerSecond,
    "floor.postgres.floorMs": r.floor.postgres.floorMs,
    "floor.pglite.floorMs": r.floor.pglite.floorMs,
    "floor.postgres.tight.floorMs": r.floor.postgres.tight.floorMs,
  };
  const notFinite = Object.entries(figures).filter(([, v]) => typeof v !== "number" || !Number.isFinite(v));
  expect(notFinite).toEqual([]);
}, 90_000);
