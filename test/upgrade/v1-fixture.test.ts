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
import {
  decryptEnvelope,
  isTokenEnvelope,
  readEnvelopeHeader,
  readTokenEnvelopeHeader,
} from "../../src/crypto/index.ts";
import { runRewrap } from "../../src/keys/rewrap.ts";
import type { Principal } from "../../src/access/principal.ts";
import { fieldContexts } from "../../src/tokens/record.ts";
import { auditRows } from "../tokens/helpers.ts";
import { agePastRetireGrace } from "../keys/helpers.ts";
import { opens, releasedMaterial, type Grant } from "../tokens/released-material.ts";

for (const kind of dbKinds) {
  describe(`[${kind}] upgrade from the v1 fixture`, () => {
    let db: TestDatabase;
    let t: TestApp;
    beforeAll(async () => {
      db = await openV1Fixture(kind);
      await applyMigrations(db);
      t = await startTestApp(db, {
        env: { MASTER_KEY_ENCRYPTION_KEY: v1Meta.kek, BOOTSTRAP_ADMIN_KEY: v1Meta.apiKeys.admin },
      });
    }, 60_000);
    afterAll(async () => {
      await t?.close();
      await db?.close();
    });
    const reader = async (): Promise<Principal> => {
      const r = await db.prisma.requester.findUniqueOrThrow({ where: { requesterId: "svc-reader" } });
      return {
        id: r.id,
        requesterId: r.requesterId,
        department: r.department,
        keyId: "test",
        roles: ["reader", "exporter"],
        publicKeyJwk: null,
      };
    };

    test("the v1 key and every v1 token record read through the API", async () => {
      const keys = await t.runtime.keys.versions();
      expect(keys.map((k) => [k.version, k.status, k.sliceSeconds])).toEqual([[1, "active", 3600]]);
      for (const tok of v1Meta.tokens.filter((x) => /^[A-Za-z0-9._:@+-]+$/.test(x.userId))) {
        const res = await callApi(
          t,
          v1Meta.apiKeys.reader,
          "GET",
          `/v1/tokens/${encodeURIComponent(tok.integration)}/${encodeURIComponent(tok.userId)}?purpose=upgrade`,
        );
        expect(res.status).toBe(200);
        const body = (await res.json()) as Record<string, unknown>;
        expect(body.accessToken).toBe(tok.accessToken);
        expect(body).not.toHaveProperty("refreshToken");
        expect(body.hasRefreshToken).toBe(tok.refreshToken !== undefined);
      }
      // The identifiers the HTTP API refuses ('"', unicode) through the vault.
      for (const tok of v1Meta.tokens)
        expect(
          (await t.runtime.tokens.read(await reader(), tok, { refresh: "never", purpose: "upgrade" })).accessToken,
        ).toBe(tok.accessToken);
    });

    test("keys:rotate re-seals every v1 token as v2; no key any grant releases opens one; an unopenable row is skipped, audited, and named by --retire", async () => {
      const stored = Date.parse(v1Meta.storedAt);
      const grantV1 = async (): Promise<Grant> => {
        const res = await callApi(t, v1Meta.apiKeys.reader, "POST", "/v1/access-requests", {
          resource: { type: "timeslice" },
          timeRange: { start: stored - 3600_000, end: stored + 3 * 3600_000 },
          keyVersion: 1,
          purpose: "upgrade test",
        });
        expect(res.status).toBe(201);
        return (await res.json()) as Grant;
      };
      const grant = await grantV1();
      const material = await releasedMaterial([grant]);
      const rowsBefore = await db.prisma.oAuthToken.findMany({ orderBy: { id: "asc" } });
      // v1 as it was: a time-slice grant opens the stored tokens (the finding this upgrade fixes).
      expect(rowsBefore.every((r) => !isTokenEnvelope(r.accessToken))).toBe(true);
      expect(await opens(rowsBefore[0]!.accessToken, material)).toBeGreaterThan(0);

      // One damaged row: a ciphertext copied in from another row.
      const [victim, donor] = [
        rowsBefore.find((r) => r.integration === "github")!,
        rowsBefore.find((r) => r.integration === "gmail")!,
      ];
      await db.prisma
        .$executeRaw`UPDATE oauth_tokens SET "accessToken" = ${donor.accessToken} WHERE id = ${victim.id}::uuid`;

      const keys = t.runtime.keys;
      await keys.rotate({ actor: "test" });
      const failedBefore = (await auditRows(db, "DECRYPT_FAILED")).length;
      const r = await runRewrap(keys, keys.rewrappables(), { batchSize: 2 });
      expect(r.moved).toBe(v1Meta.tokens.length - 1);
      expect(r.failed.map((f) => [f.store, f.id, f.label])).toEqual([["oauth_tokens", victim.id, "token:github:bob"]]);
      const audited = await auditRows(db, "DECRYPT_FAILED");
      expect(audited.length).toBe(failedBefore + 1);
      expect(audited.at(-1)).toMatchObject({ actor: "system:rewrap", target: "token:github:bob" });

      // (As if the operator waited out the retirement grace after the rotation.)
      await agePastRetireGrace(db, 1);
      // Retirement is refused and names the row that blocks it.
      const refused = await keys.retire(1).then(
        () => null,
        (e: Error) => e,
      );
      expect(refused?.message).toContain(victim.id);
      expect(refused?.message).toContain("token:github:bob");
      await db.prisma.oAuthToken.delete({ where: { id: victim.id } });

      // Every remaining token is a v2 envelope under version 2 naming its row, field and row version; none opens with a slice key.
      const rows = await db.prisma.oAuthToken.findMany();
      for (const row of rows) {
        expect(row.keyVersion).toBe(2);
        for (const [field, jwe] of [
          ["access", row.accessToken],
          ["refresh", row.refreshToken],
        ] as const) {
          if (jwe === null) continue;
          expect(isTokenEnvelope(jwe)).toBe(true);
          expect(readTokenEnvelopeHeader(jwe)).toMatchObject({
            kid: "tok:2",
            version: 2,
            ctx: fieldContexts(row, field).ctx,
          });
          expect(() => readEnvelopeHeader(jwe)).toThrow();
          expect(await opens(jwe, material)).toBe(0);
        }
      }
      // The v1 ciphertexts themselves, replayed into their rows, are refused now that v1 is retired.
      await keys.retire(1);
      const alice = rowsBefore.find((x) => x.userId === "alice")!;
      const row = rows.find((x) => x.id === alice.id)!;
      await db.prisma
        .$executeRaw`UPDATE oauth_tokens SET "accessToken" = ${alice.accessToken} WHERE id = ${alice.id}::uuid`;
      const res = await callApi(
        t,
        v1Meta.apiKeys.reader,
        "GET",
        "/v1/tokens/gmail/alice?refresh=never&purpose=upgrade",
      );
      expect(res.status).toBe(422);
      await db.prisma
        .$executeRaw`UPDATE oauth_tokens SET "accessToken" = ${row.accessToken} WHERE id = ${alice.id}::uuid`;
      // And every token still reads through the API.
      for (const tok of v1Meta.tokens.filter((x) => x.integration !== "github")) {
        const got = await t.runtime.tokens.read(await reader(), tok, { refresh: "never", purpose: "upgrade" });
        expect(got.accessToken).toBe(tok.accessToken);
      }
      const exported = await t.runtime.tokens.export(
        await reader(),
        { integration: "gmail", userId: "alice" },
        { purpose: "upgrade" },
      );
      expect(exported.refreshToken).toBe("1//alice-refresh");
      // decryptEnvelope is the v1 opener: with the grant's own key it would have opened the old value.
      const k = grant.keys.find((x) => x.kid === readEnvelopeHeader(alice.accessToken).kid)!;
      expect(
        new TextDecoder().decode(
          await decryptEnvelope(alice.accessToken, {
            privateKey: k.privateJwk,
            expectedCtx: "oauth:gmail:alice:access",
          }),
        ),
      ).toBe("ya29.alice-access");
    }, 120_000);
  });
}
