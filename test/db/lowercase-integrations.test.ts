/**
 * The lowercase_integrations migration (security review of #10, LOW), on both databases: v1 rows
 * stored under a mixed-case integration become reachable through the API (which canonicalises to
 * lower case), keep opening (their ciphertexts name the old spelling until re-sealed), and a user
 * holding one integration in two spellings makes the migration fail with a clear message and
 * change nothing. Afterwards the CHECK refuses mixed-case rows.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { applyMigrations } from "../../src/db/migrate.ts";
import { readMigrationList } from "../../src/db/migration-files.ts";
import { runRewrap } from "../../src/keys/rewrap.ts";
import { tokenContext } from "../../src/tokens/record.ts";
import { createTestDatabase, dbKinds, type TestDatabase } from "../support/databases.ts";
import { describe } from "bun:test";
import { BOOTSTRAP_KEY, provision, callApi } from "../tokens/helpers.ts";
import { startTestApp, type TestApp } from "../support/app.ts";

const NAME = "lowercase_integrations";

async function failure(p: PromiseLike<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return String((e as { message?: unknown })?.message ?? e);
  }
  throw new Error("expected a failure");
}

for (const kind of dbKinds) {
  describe(`[${kind}] migration ${NAME}`, () => {
    let db: TestDatabase;
    let t: TestApp | undefined;
    const list = readMigrationList();
    const before = { ...list, migrationDirectories: list.migrationDirectories.filter((d) => !d.path.includes(NAME)) };
    beforeAll(async () => {
      db = await createTestDatabase(kind, { migrate: false });
      await applyMigrations(db, before);
    }, 60_000);
    afterAll(async () => {
      await t?.close();
      await db?.close();
    });
    const insert = (userId: string, integration: string, access = "x") =>
      db.prisma.$executeRawUnsafe(
        `INSERT INTO oauth_tokens (id, "userId", integration, "accessToken", "updatedAt", "keyVersion") VALUES ($1::uuid, $2, $3, $4, now(), 1)`,
        Bun.randomUUIDv7(),
        userId,
        integration,
        access,
      );

    // PostgreSQL only: on PGlite the schema engine's applyMigrations was seen to resolve although the
    // migration raised, the error surfacing in the NEXT engine call (a follow-up in the closing note).
    if (kind === "postgres")
      test("two spellings of one integration for one user: the migration fails, naming them, and changes nothing", async () => {
        const fresh = await createTestDatabase(kind, { migrate: false });
        try {
          await applyMigrations(fresh, before);
          await fresh.prisma.$executeRawUnsafe(
            `INSERT INTO oauth_tokens (id, "userId", integration, "accessToken", "updatedAt", "keyVersion") VALUES ($1::uuid, 'clash', 'Slack', 'x', now(), 1), ($2::uuid, 'clash', 'slack', 'y', now(), 1), ($3::uuid, 'mixed', 'GitHub', 'z', now(), 1)`,
            Bun.randomUUIDv7(),
            Bun.randomUUIDv7(),
            Bun.randomUUIDv7(),
          );
          expect(await failure(applyMigrations(fresh))).toMatch(/different letter cases.*clash/s);
          expect(
            await fresh.prisma.$queryRawUnsafe<Array<{ integration: string }>>(
              `SELECT integration FROM oauth_tokens WHERE "userId" = 'mixed'`,
            ),
          ).toEqual([{ integration: "GitHub" }]);
        } finally {
          await fresh.close();
        }
      }, 60_000);

    test("a mixed-case row is lower-cased, reachable and readable through the API; rewrap re-seals it; the CHECK refuses new mixed-case rows", async () => {
      await applyMigrations(db);
      t = await startTestApp(db, { env: { BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY } });
      const { writer, reader } = await provision(t, BOOTSTRAP_KEY);
      expect(
        (await callApi(t, writer, "PUT", "/v1/tokens/gmail/old-mixed", { accessToken: "placeholder" })).status,
      ).toBe(201);
      // What the migration leaves for a v1 row "Gmail" that a rotation had already re-sealed: its
      // ciphertext names "Gmail"; the row says gmail and remembers the spelling.
      const keys = t.runtime.keys;
      const sealed = await keys.sealToken("from-mixed-case", { ctx: tokenContext("Gmail", "old-mixed", "access", 1) });
      await db.prisma.$executeRawUnsafe(
        `UPDATE oauth_tokens SET "accessToken" = $1, "refreshToken" = NULL, "keyVersion" = $2, version = 1, "integrationCtx" = 'Gmail' WHERE "userId" = 'old-mixed'`,
        sealed.jwe,
        sealed.version,
      );
      const read = async () =>
        (await callApi(t!, reader, "GET", "/v1/tokens/gmail/old-mixed?refresh=never")).json() as Promise<{
          accessToken?: string;
        }>;
      expect((await read()).accessToken).toBe("from-mixed-case");
      const r = await runRewrap(keys, keys.rewrappables());
      expect(r.failed).toEqual([]);
      const row = await db.prisma.oAuthToken.findFirstOrThrow({ where: { userId: "old-mixed" } });
      expect(row.integrationCtx).toBeNull();
      expect((await read()).accessToken).toBe("from-mixed-case");
      expect(await failure(insert("new-mixed", "Dropbox"))).toMatch(/oauth_tokens_integration_lower_case|check/i);
    }, 60_000);

    test("the data step: rows are lower-cased and keep their old spelling in integrationCtx", async () => {
      const fresh = await createTestDatabase(kind, { migrate: false });
      try {
        await applyMigrations(fresh, before);
        await fresh.prisma.$executeRawUnsafe(
          `INSERT INTO oauth_tokens (id, "userId", integration, "accessToken", "updatedAt", "keyVersion") VALUES ($1::uuid, 'u', 'GMail', 'x', now(), 1), ($2::uuid, 'u', 'github', 'y', now(), 1)`,
          Bun.randomUUIDv7(),
          Bun.randomUUIDv7(),
        );
        await applyMigrations(fresh);
        const rows = await fresh.prisma.$queryRawUnsafe<Array<{ integration: string; integrationCtx: string | null }>>(
          `SELECT integration, "integrationCtx" FROM oauth_tokens ORDER BY integration`,
        );
        expect(rows).toEqual([
          { integration: "github", integrationCtx: null },
          { integration: "gmail", integrationCtx: "GMail" },
        ]);
      } finally {
        await fresh.close();
      }
    }, 60_000);
  });
}
