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
const report = resolve(root, ".test-report.xml");
const figures = resolve(root, ".reliability-figures.txt");
rmSync(report, { force: true });
rmSync(figures, { force: true });
const extra = process.argv.slice(2);
// bunfig's test root is ./test, so the reliability suite runs only when named explicitly.
const paths = process.env.CHRONOKMS_RELIABILITY === "1" && extra.length === 0 ? ["./test", "./test-reliability"] : [];
const proc = Bun.spawn(
  [
    process.execPath,
    "test",
    "--timeout",
    "60000",
    "--reporter=junit",
    `--reporter-outfile=${report}`,
    ...paths,
    ...extra,
  ],
  { cwd: root, stdout: "inherit", stderr: "inherit", env: { ...process.env, RELIABILITY_FIGURES_FILE: figures } },
);
const code = await proc.exited;

let xml = "";
try {
  xml = readFileSync(report, "utf8");
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
