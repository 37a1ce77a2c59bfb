/**
 * The served /openapi.json passes `redocly lint` with the recommended rules (SPEC §7): every
 * operation has an operationId, a summary and a security requirement (`[]` on public routes), and
 * the document names its license. Runs the real CLI offline (telemetry and update checks off).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../src/db/migration-files.ts";
import { isPublicPath } from "../../src/http/openapi.ts";
import { createTestDatabase, type TestDatabase } from "../support/databases.ts";
import { startTestApp, type TestApp } from "../support/app.ts";

type Op = { operationId?: string; summary?: string; security?: unknown[] };
type Doc = { info: { license?: { name?: string } }; paths: Record<string, Record<string, Op>> };

let db: TestDatabase;
let t: TestApp;
const dir = mkdtempSync(join(tmpdir(), "chronokms-redocly-"));
beforeAll(async () => {
  db = await createTestDatabase("pglite");
  t = await startTestApp(db);
}, 60_000);
afterAll(async () => {
  await t.close();
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

async function served(): Promise<Doc> {
  const res = await t.app.request("/openapi.json");
  expect(res.status).toBe(200);
  return (await res.json()) as Doc;
}

test("every operation has a unique operationId, a summary and a security requirement; public ones declare none", async () => {
  const doc = await served();
  const ids = new Map<string, string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const where = `${method.toUpperCase()} ${path}`;
      expect(op.operationId, where).toMatch(/^[a-z][A-Za-z0-9]*$/);
      expect(ids.get(op.operationId!), `${where} repeats an operationId`).toBeUndefined();
      ids.set(op.operationId!, where);
      expect(op.summary?.length ?? 0, where).toBeGreaterThan(0);
      const isPublic = isPublicPath(path.replace(/\{[^}]+\}/g, "x"));
      expect(op.security, where).toEqual(isPublic ? [] : [{ apiKey: [] }]);
    }
  }
  expect(doc.info.license?.name).toBeTruthy();
});

test("redocly lint (recommended rules) finds no error and no warning in the served document, offline", async () => {
  const file = join(dir, "openapi.json");
  writeFileSync(file, JSON.stringify(await served()));
  const proc = Bun.spawn(
    [
      process.execPath,
      join(projectRoot, "node_modules/@redocly/cli/bin/cli.js"),
      "lint",
      "--extends=recommended",
      "--format=json",
      file,
    ],
    {
      cwd: dir, // no redocly.yaml here: the recommended ruleset as shipped
      env: {
        PATH: process.env.PATH ?? "",
        HOME: dir,
        REDOCLY_TELEMETRY: "off",
        REDOCLY_SUPPRESS_UPDATE_NOTICE: "true",
        NO_COLOR: "1",
      },
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const report = JSON.parse(out) as {
    totals: { errors: number; warnings: number };
    problems: Array<{ ruleId: string; severity: string; message: string }>;
  };
  if (report.problems.length > 0)
    console.error(report.problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message}`).join("\n"), err);
  expect(report.totals.errors).toBe(0);
  expect(report.totals.warnings).toBe(0);
  expect(code).toBe(0);
}, 60_000);
