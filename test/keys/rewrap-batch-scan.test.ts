/**
 * A rewrap batch reads its own rows, not the table: the keyset SELECT walks the primary key from
 * the cursor and stops at the batch size, whatever the planner thinks of the pending test. When
 * the batch was "the first n pending rows by id" instead, the planner (estimating half the rows
 * pending) read and sorted every row still after the cursor, for every batch: a rotation of n rows
 * cost O(n²/batch), ~20 µs of PostgreSQL CPU per re-sealed row at 20,000 rows.
 */
import { expect, test } from "bun:test";
import { pendingBatchSql, resealWriteSql } from "../../src/keys/rewrappable.ts";
import { OAUTH_TOKENS_TABLE } from "../../src/tokens/rewrap.ts";
import { describeEachDb } from "../support/databases.ts";

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  Plans?: PlanNode[];
}

function nodes(n: PlanNode): PlanNode[] {
  return [n, ...(n.Plans ?? []).flatMap(nodes)];
}

describeEachDb("a rewrap batch's SELECT", (h) => {
  test("reads the batch's rows through the primary key, never the rest of the table", async () => {
    await h.db.prisma.oAuthToken.createMany({
      data: Array.from({ length: 2000 }, (_, i) => ({
        userId: `scan-${i}`,
        integration: "gmail",
        accessToken: "not-an-envelope",
        keyVersion: 1,
      })),
    });
    const ids = (
      await h.db.prisma.oAuthToken.findMany({ where: { userId: { startsWith: "scan-" } }, orderBy: { id: "asc" } })
    ).map((r) => r.id);
    await h.db.prisma.$executeRawUnsafe("ANALYZE oauth_tokens");
    const sql = pendingBatchSql(OAUTH_TOKENS_TABLE);
    for (const after of [null, ids[999]!]) {
      const plan = await h.db.prisma.$transaction(async (tx) => {
        await tx.$executeRawUnsafe(`PREPARE rewrap_batch AS ${sql}`);
        const out = await tx.$queryRawUnsafe<Array<{ "QUERY PLAN": Array<{ Plan: PlanNode }> }>>(
          `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE rewrap_batch(99, 100, ${after === null ? "NULL" : `'${after}'`})`,
        );
        await tx.$executeRawUnsafe("DEALLOCATE rewrap_batch");
        return out[0]!["QUERY PLAN"][0]!.Plan;
      });
      const scans = nodes(plan).filter((n) => n["Relation Name"] === "oauth_tokens");
      expect(scans.map((n) => [n["Node Type"], n["Actual Rows"]])).toEqual([["Index Scan", 100]]);
    }
    await h.db.prisma.oAuthToken.deleteMany({ where: { userId: { startsWith: "scan-" } } });
  });
});

describeEachDb("a rewrap chunk's write-back", (h) => {
  test("does work in proportion to its rows, not their square", async () => {
    const n = 200;
    await h.db.prisma.oAuthToken.createMany({
      data: Array.from({ length: n }, (_, i) => ({
        userId: `write-${i}`,
        integration: "gmail",
        accessToken: "old",
        refreshToken: "old",
        keyVersion: 1,
      })),
    });
    const rows = await h.db.prisma.oAuthToken.findMany({ where: { userId: { startsWith: "write-" } } });
    const literal = (values: Array<string | number>) => `'{${values.map((v) => `"${v}"`).join(",")}}'`;
    const args = [
      literal(rows.map((r) => r.id)),
      literal(rows.map((r) => r.version)),
      literal(rows.map(() => 2)),
      literal(rows.map(() => "new")),
      literal(rows.map(() => "new")),
    ];
    const plan = await h.db.prisma.$transaction(async (tx) => {
      await tx.$executeRawUnsafe(`PREPARE reseal_write AS ${resealWriteSql(OAUTH_TOKENS_TABLE)}`);
      const out = await tx.$queryRawUnsafe<Array<{ "QUERY PLAN": Array<{ Plan: PlanNode }> }>>(
        `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE reseal_write(${args.join(", ")})`,
      );
      await tx.$executeRawUnsafe("DEALLOCATE reseal_write");
      return out[0]!["QUERY PLAN"][0]!.Plan;
    });
    // Every row a node produced, over all its loops. A join that rescans the chunk's values for
    // each row it updates produces n² of them (40,000 here, 62,500 for a 250-row chunk: ~25 ms).
    const produced = nodes(plan).reduce((sum, x) => sum + (x["Actual Rows"] ?? 0) * (x["Actual Loops"] ?? 1), 0);
    expect(produced).toBeLessThan(20 * n);
    const updated = await h.db.prisma.oAuthToken.count({ where: { userId: { startsWith: "write-" }, keyVersion: 2 } });
    expect(updated).toBe(n);
    await h.db.prisma.oAuthToken.deleteMany({ where: { userId: { startsWith: "write-" } } });
  });
});
