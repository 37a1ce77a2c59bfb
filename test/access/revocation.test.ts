/**
 * Revocation and the verification cache. From the attacker's side: a holder of an API key that
 * is being revoked, whose request is being verified at that very moment (it must not leave the
 * key cached for another 5 s), and one whose key is revoked — or whose requester is disabled —
 * through another process (it must stop working there within 1 s, not within the cache TTL).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb, describePostgres } from "../support/databases.ts";
import { accessHarness, type AccessHarness } from "./support.ts";
import { ApiKeyService, AuthFailure } from "../../src/access/api-keys.ts";
import type { ApiKeyRepository } from "../../src/access/api-key-repository.ts";
import { openDatabase } from "../../src/db/database.ts";
import { createLogger } from "../../src/log.ts";

/**
 * The real service on the real database, with the answer of its verification lookup held back
 * until the test opens the gate: the row has been read (whatever driver the repository uses: pg,
 * Bun's native client or PGlite's prepared path), its answer is in flight. Only the repository's
 * one read method is wrapped; everything else runs unchanged.
 */
function gated(svc: ApiKeyService) {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let reached!: () => void;
  const queried = new Promise<void>((r) => (reached = r));
  const repo = (svc as unknown as { repo: ApiKeyRepository }).repo;
  const read = repo.forVerification.bind(repo);
  repo.forVerification = async (keyId: string) => {
    const row = await read(keyId);
    reached();
    await gate;
    return row;
  };
  return { open, queried };
}

describeEachDb("a verification in flight when its key is revoked", (h) => {
  let x: AccessHarness;
  beforeAll(async () => {
    x = await accessHarness(h.db);
  });
  afterAll(async () => x?.close());

  test("is answered from what it read, but does not put the revoked key back into the cache", async () => {
    const k = await x.makeKey(["reader"]);
    const svc = new ApiKeyService({ db: h.db, audit: x.audit, clock: x.clock, log: createLogger("silent") });
    const g = gated(svc);
    try {
      const inFlight = svc.verify(k.apiKey);
      await g.queried; // the row (still enabled) has been read
      await svc.revoke(k.requesterUuid, k.keyId, "test");
      g.open();
      expect((await inFlight).keyId).toBe(k.keyId);
      expect(svc.cached(k.apiKey)).toBeNull();
      await expect(svc.verify(k.apiKey)).rejects.toMatchObject({ reason: "key-disabled" });
    } finally {
      g.open();
      await svc.close();
    }
  });

  test("the same for a requester disabled meanwhile", async () => {
    const k = await x.makeKey(["reader"]);
    const svc = new ApiKeyService({ db: h.db, audit: x.audit, clock: x.clock, log: createLogger("silent") });
    const g = gated(svc);
    try {
      const inFlight = svc.verify(k.apiKey);
      await g.queried;
      await h.db.prisma.requester.update({ where: { id: k.requesterUuid }, data: { enabled: false } });
      svc.invalidateRequester(k.requesterUuid); // what RequesterService.update does after its write
      g.open();
      await inFlight;
      expect(svc.cached(k.apiKey)).toBeNull();
      await expect(svc.verify(k.apiKey)).rejects.toMatchObject({ reason: "requester-disabled" });
    } finally {
      g.open();
      await svc.close();
    }
  });
});

describePostgres("API-key and requester changes across processes (NOTIFY)", (h) => {
  test("a revocation, a disabled requester and a deleted requester stop working in another process within 1 s", async () => {
    const other = await openDatabase({ kind: "postgres", url: h.db.url! });
    const a = await accessHarness(h.db);
    // A long cache TTL in b: what b stops accepting, it learned through LISTEN/NOTIFY.
    const b = await accessHarness(other, { apiKeyCacheTtlMs: 60_000 });
    try {
      await Bun.sleep(200); // b's LISTEN connection is up
      const within1s = async (apiKey: string, change: () => Promise<unknown>) => {
        await b.access.apiKeys.verify(apiKey);
        expect(b.access.apiKeys.cached(apiKey)).not.toBeNull();
        await change();
        const t0 = performance.now();
        while (b.access.apiKeys.cached(apiKey) !== null) {
          if (performance.now() - t0 > 1000) throw new Error("still cached in the other process after 1 s");
          await Bun.sleep(5);
        }
        await expect(b.access.apiKeys.verify(apiKey)).rejects.toBeInstanceOf(AuthFailure);
        return performance.now() - t0;
      };
      const lags: number[] = [];
      const k1 = await a.makeKey(["reader"]);
      lags.push(await within1s(k1.apiKey, () => a.access.apiKeys.revoke(k1.requesterUuid, k1.keyId, "test")));
      const k2 = await a.makeKey(["reader"]);
      lags.push(
        await within1s(k2.apiKey, () => a.access.requesters.update(k2.requesterUuid, { enabled: false }, "test")),
      );
      const k3 = await a.makeKey(["reader"]);
      lags.push(await within1s(k3.apiKey, () => a.access.requesters.remove(k3.requesterUuid, "test")));
      console.log(
        `[postgres] API key / requester change visible in another process after ${lags.map((l) => l.toFixed(0)).join(", ")} ms`,
      );
    } finally {
      await b.close();
      await a.close();
      await other.close();
    }
  });
});
