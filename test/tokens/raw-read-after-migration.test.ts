/**
 * The hot reads off Prisma (src/db/raw-query.ts) across a schema change made while the service
 * runs (an in-place upgrade migrating from another process): PostgreSQL keeps each connection's
 * named prepared statement, and one whose result type changed fails with "cached plan must not
 * change result type" on every later use of that connection — every token read and API-key
 * verification there would fail until a restart. They must go on answering.
 */
import { expect, test } from "bun:test";
import { ApiKeyRepository } from "../../src/access/api-key-repository.ts";
import type { Database } from "../../src/db/database.ts";
import { tokenRepository } from "../../src/tokens/repository.ts";
import { describeEachDb } from "../support/databases.ts";

async function script(db: Database, sql: string): Promise<void> {
  if (db.pglite && !db.pool) await db.pglite.exec(sql);
  else await db.pool!.query(sql);
}

describeEachDb("raw reads across a column type change", (h) => {
  test("the token read and the key lookup still answer after the columns they select change type", async () => {
    await h.db.prisma.oAuthToken.create({
      data: { userId: "mig-user", integration: "gmail", accessToken: "tok:1.a", keyVersion: 1, scope: "s" },
    });
    const requester = await h.db.prisma.requester.create({ data: { requesterId: "mig-req", name: "m" } });
    await h.db.prisma.apiKey.create({
      data: { keyId: "mig-key", secretHash: "h", requesterId: requester.id, roles: ["reader"] },
    });
    const tokens = tokenRepository(h.db);
    const keys = new ApiKeyRepository(h.db);
    const key = { userId: "mig-user", integration: "gmail" };
    // Prepare the statements on every connection the pool may hand out.
    await Promise.all(Array.from({ length: 12 }, () => tokens.fresh(key)));
    await Promise.all(Array.from({ length: 12 }, () => keys.forVerification("mig-key")));
    await script(
      h.db,
      `ALTER TABLE oauth_tokens ALTER COLUMN scope TYPE varchar(4000);
       ALTER TABLE api_keys ALTER COLUMN "secretHash" TYPE varchar(4000);`,
    );
    try {
      for (const row of await Promise.all(Array.from({ length: 12 }, () => tokens.fresh(key))))
        expect(row?.scope).toBe("s");
      for (const row of await Promise.all(Array.from({ length: 12 }, () => keys.forVerification("mig-key"))))
        expect(row?.secretHash).toBe("h");
    } finally {
      await script(
        h.db,
        `ALTER TABLE oauth_tokens ALTER COLUMN scope TYPE text;
         ALTER TABLE api_keys ALTER COLUMN "secretHash" TYPE text;`,
      );
    }
    expect((await tokens.fresh(key))?.scope).toBe("s");
    expect((await keys.forVerification("mig-key"))?.secretHash).toBe("h");
  });
});
