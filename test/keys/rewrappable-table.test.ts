/**
 * A new encrypted table is one description object: a throwaway table created here, described once
 * (`EncryptedTable`), is counted per version, blocks retirement, and is re-sealed by rotation's
 * rewrap next to oauth_tokens, with the compare-and-set write and DECRYPT_FAILED handling of the
 * generic engine (src/keys/rewrappable.ts).
 */
import { expect, test } from "bun:test";
import { canonicalJson, readTokenEnvelopeHeader } from "../../src/crypto/index.ts";
import { ConflictError } from "../../src/errors.ts";
import { runRewrap } from "../../src/keys/rewrap.ts";
import { type EncryptedTable, rewrappable } from "../../src/keys/rewrappable.ts";
import { describeEachDb } from "../support/databases.ts";
import { agePastRetireGrace, keyService, seedTokens, verifyTokens } from "./helpers.ts";

type Note = { id: string; owner: string; title: string; row_version: number; key_version: number };

/** The whole of what a new encrypted table needs. */
const NOTES: EncryptedTable<Note> = {
  name: "test_notes",
  table: "test_notes",
  id: "id",
  rowVersion: "row_version",
  keyVersion: "key_version",
  fields: [
    { name: "body", column: "body" },
    { name: "summary", column: "summary", nullable: true },
  ],
  columns: ["owner", "title"],
  contexts: (row, field) => ({ ctx: noteCtx(row, field, row.row_version) }),
  newContext: (row, field, next) => noteCtx(row, field, next),
  label: (row) => `note:${row.owner}:${row.title}`,
};

function noteCtx(row: Pick<Note, "owner" | "title">, field: string, rowVersion: number): string {
  return canonicalJson(["chronokms-test/note/v1", row.owner, row.title, field, Number(rowVersion)]);
}

describeEachDb("a described encrypted table", (h) => {
  test("rotation re-seals it next to oauth_tokens; counts, retirement refusal, compare-and-set, damaged rows", async () => {
    await h.db.prisma.$executeRawUnsafe(`DROP TABLE IF EXISTS "test_notes"`);
    await h.db.prisma.$executeRawUnsafe(
      `CREATE TABLE "test_notes" ("id" uuid PRIMARY KEY, "owner" text NOT NULL, "title" text NOT NULL,
        "body" text NOT NULL, "summary" text, "row_version" int NOT NULL, "key_version" int NOT NULL)`,
    );
    const keys = await keyService(h.db);
    const notes = rewrappable(h.db, NOTES);
    keys.register(notes);
    try {
      const old = (await keys.active()).version;
      const insert = async (i: number, title: string, withSummary: boolean) => {
        const row = { owner: `o${i}`, title };
        const body = await keys.sealToken(`body ${i}`, { ctx: noteCtx(row, "body", 1) });
        const summary = withSummary
          ? (await keys.sealToken(`sum ${i}`, { ctx: noteCtx(row, "summary", 1) })).jwe
          : null;
        await h.db.prisma.$executeRawUnsafe(
          `INSERT INTO "test_notes" VALUES ($1::uuid, $2, $3, $4, $5, 1, $6)`,
          crypto.randomUUID(),
          row.owner,
          title,
          body.jwe,
          summary,
          body.version,
        );
      };
      for (let i = 0; i < 30; i++) await insert(i, `t${i}`, i % 3 !== 0);
      // One damaged row: its body names another note's ctx, so it does not open (skipped, reported).
      await insert(99, "damaged", true);
      await h.db.prisma.$executeRawUnsafe(
        `UPDATE "test_notes" SET "body" = (SELECT "body" FROM "test_notes" WHERE "title" = 't1') WHERE "title" = 'damaged'`,
      );
      await h.db.prisma.oAuthToken.deleteMany({});
      await seedTokens(h.db, keys, 10);

      expect((await notes.countByVersion()).get(old)).toBe(31);
      expect((await keys.versions()).find((v) => v.version === old)?.recordsByStore).toEqual({
        oauth_tokens: 10,
        test_notes: 31,
      });

      await keys.rotate();
      const next = old + 1;
      // A writer that re-seals a row between the rewrap's read and its write wins: the first note
      // chunk the rewrap re-seals has its first row rewritten (new value, next row version) before
      // the rewrap writes it back.
      let raced: string | undefined;
      const racing = Object.create(keys) as typeof keys;
      racing.resealTokens = async (items) => {
        const out = await keys.resealTokens(items);
        const hit = raced
          ? []
          : await h.db.prisma.$queryRawUnsafe<Note[]>(
              `SELECT "id"::text AS "id", * FROM "test_notes" WHERE "body" = $1 AND "title" <> 'damaged'`,
              items[0]!.jwe,
            );
        if (hit[0]) {
          const row = hit[0];
          raced = row.title;
          const body = await keys.sealToken("body rewritten", { ctx: noteCtx(row, "body", 2) });
          const sum = await keys.sealToken("sum rewritten", { ctx: noteCtx(row, "summary", 2) });
          await h.db.prisma.$executeRawUnsafe(
            `UPDATE "test_notes" SET "body" = $1, "summary" = $2, "row_version" = 2, "key_version" = $3 WHERE "id" = $4::uuid`,
            body.jwe,
            sum.jwe,
            body.version,
            row.id,
          );
        }
        return out;
      };

      const r = await runRewrap(racing, keys.rewrappables(), { batchSize: 7 });
      expect(raced).toBeDefined();
      expect(r.failed.map((f) => [f.store, f.label, f.field])).toEqual([["test_notes", "note:o99:damaged", "body"]]);
      // 30 notes and 10 tokens pending; the raced note was already moved by its writer.
      expect(r.moved).toBe(10 + 29);
      expect(await notes.countByVersion()).toEqual(
        new Map([
          [old, 1],
          [next, 30],
        ]),
      );

      const rows = await h.db.prisma.$queryRawUnsafe<Array<Note & { body: string; summary: string | null }>>(
        `SELECT "id"::text AS "id", * FROM "test_notes" WHERE "title" <> 'damaged' ORDER BY "owner"`,
      );
      for (const row of rows) {
        const i = Number(row.owner.slice(1));
        expect([row.key_version, row.row_version]).toEqual([next, 2]);
        expect(readTokenEnvelopeHeader(row.body).version).toBe(next);
        const body = await keys.openToken(row.body, { ctx: noteCtx(row, "body", 2), legacyCtx: "" });
        expect(new TextDecoder().decode(body)).toBe(row.title === raced ? "body rewritten" : `body ${i}`);
        if (i % 3 === 0 && row.title !== raced) expect(row.summary).toBeNull();
        else {
          const s = await keys.openToken(row.summary!, { ctx: noteCtx(row, "summary", 2), legacyCtx: "" });
          expect(new TextDecoder().decode(s)).toBe(row.title === raced ? "sum rewritten" : `sum ${i}`);
        }
      }
      const v = await verifyTokens(h.db, keys);
      expect([v.rows, v.failures, [...v.byVersion]]).toEqual([10, [], [[next, 10]]]);

      // The damaged row still needs the old version: retirement names it.
      await agePastRetireGrace(h.db, old);
      const err = await keys.retire(old).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as Error).message).toContain("test_notes: 1");
      expect((err as Error).message).toContain("note:o99:damaged");
      await h.db.prisma.$executeRawUnsafe(`DELETE FROM "test_notes" WHERE "title" = 'damaged'`);
      expect(await keys.retire(old)).toEqual({ version: old, alreadyRetired: false });
    } finally {
      keys.close();
      await h.db.prisma.$executeRawUnsafe(`DROP TABLE IF EXISTS "test_notes"`);
    }
  });
});
