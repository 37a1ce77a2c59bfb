/**
 * `bun run test`: the whole suite. Runs `bun test`, then reads its JUnit report to say how many
 * tests ran on each database and to end with one line `N passed, N failed`.
 * Extra arguments are passed to `bun test` (e.g. a path filter).
 * CHRONOKMS_RELIABILITY=1 (CI) adds ./test-reliability to the same run, at the sizes its RELIABILITY_*
 * variables name, so one summary line covers both; each reliability test's one-line figure is
 * repeated just before that line.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const figures = resolve(root, ".reliability-figures.txt");
const extra = process.argv.slice(2);
const reliability = process.env.CHRONOKMS_RELIABILITY === "1" && extra.length === 0;
// bunfig's test root is ./test, so the reliability suite runs only when named explicitly.
const dirs = reliability ? ["test", "test-reliability"] : ["test"];
/**
 * Without arguments the files are split over SHARDS `bun test` processes run side by side: most of
 * the suite's time is spent waiting (spawned services starting, fsyncs, browsers), and one process
 * left one of two cores idle much of the time. Each shard writes its own JUnit report; shard 1
 * streams its output, the others' follow when they end. With arguments, one `bun test` as before.
 */
const shards = extra.length === 0 ? Math.max(1, Number(process.env.CHRONOKMS_TEST_SHARDS ?? 2) || 1) : 1;
const files = dirs.flatMap((d) => [...new Bun.Glob(`${d}/**/*.test.ts`).scanSync({ cwd: root })]).sort();
const groups: string[][] = Array.from({ length: shards }, () => []);
// Round-robin over the sorted files spreads each directory's slow process tests over the shards.
for (const [i, f] of files.entries()) groups[i % shards]!.push(`./${f}`);
const reports = groups.map((_, i) => resolve(root, shards === 1 ? ".test-report.xml" : `.test-report-${i + 1}.xml`));
for (const r of [...reports, resolve(root, ".test-report.xml")]) rmSync(r, { force: true });
rmSync(figures, { force: true });

const runs = groups.map((group, i) => {
  const args = shards === 1 ? (reliability ? ["./test", "./test-reliability"] : []) : group;
  return Bun.spawn(
    [
      process.execPath,
      "test",
      "--timeout",
      "60000",
      "--reporter=junit",
      `--reporter-outfile=${reports[i]}`,
      ...args,
      ...extra,
    ],
    {
      cwd: root,
      stdout: i === 0 ? "inherit" : "pipe",
      stderr: i === 0 ? "inherit" : "pipe",
      env: { ...process.env, RELIABILITY_FIGURES_FILE: figures },
    },
  );
});
const outputs = runs.map((p, i) =>
  i === 0 ? Promise.resolve("") : Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]),
);
let code = 0;
for (const [i, p] of runs.entries()) {
  const c = await p.exited;
  if (i > 0) {
    const out = await outputs[i]!;
    const [stdout, stderr] = Array.isArray(out) ? out : ["", ""];
    process.stdout.write(`\n---- test shard ${i + 1} of ${shards} ----\n${stdout}`);
    process.stderr.write(stderr);
  }
  code ||= c;
}

let xml = "";
try {
  xml = reports.map((r) => readFileSync(r, "utf8")).join("\n");
} catch {
  console.error("no test report was written");
  console.log("0 passed, 1 failed");
  process.exit(code || 1);
}
const cases = [...xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)];
let passed = 0,
  failed = 0,
  skipped = 0;
const perDb: Record<string, number> = { pglite: 0, postgres: 0 };
for (const [, attrs = "", , inner = ""] of cases) {
  if (/<skipped/.test(inner) || /<todo/.test(inner)) {
    skipped++;
    continue;
  }
  if (/<failure|<error/.test(inner)) failed++;
  else passed++;
  const where = /classname="([^"]*)"/.exec(attrs)?.[1] ?? "";
  const name = /name="([^"]*)"/.exec(attrs)?.[1] ?? "";
  for (const db of Object.keys(perDb)) if (where.includes(`[${db}]`) || name.includes(`[${db}]`)) perDb[db]!++;
}
console.log(`\ntests by database: pglite ${perDb.pglite}, postgres ${perDb.postgres}`);
if (existsSync(figures)) {
  console.log("reliability:");
  for (const line of readFileSync(figures, "utf8").trim().split("\n")) console.log(`  ${line}`);
  rmSync(figures, { force: true });
}
if (process.env.CHRONOKMS_REQUIRE_POSTGRES === "1" && perDb.postgres === 0) {
  console.error("CHRONOKMS_REQUIRE_POSTGRES=1 but no test ran on PostgreSQL");
  failed++;
}
if (code !== 0 && failed === 0) {
  // bun test failed outside any test case (an unhandled error between tests, a file that did not
  // load): that is a failure too, so the summary must not read as green.
  console.error(
    `bun test exited with code ${code} although no test case failed (see "Unhandled error" or load errors above)`,
  );
  failed++;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || code !== 0 ? 1 : 0);
