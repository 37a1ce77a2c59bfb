/**
 * A grant's key material is derived while its decision commits (src/access/access-requests.ts).
 * If the key version is retired in that window (the deriver destroyed), what was derived before
 * the retirement must not be released after it: the grant fails as it did when derivation came
 * after the commit (KEY_UNAVAILABLE), with no material anywhere.
 */
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { AccessRequestService } from "../../src/access/access-requests.ts";
import { PolicyAccessDecider } from "../../src/access/decider.ts";
import type { Principal } from "../../src/access/principal.ts";
import type { AuditReceipt, AuditSink } from "../../src/audit/types.ts";
import { SliceKeyDeriver } from "../../src/crypto/slice-keys.ts";
import { KeyUnavailableError } from "../../src/errors.ts";
import type { KeyService, KeyVersion } from "../../src/keys/types.ts";
import { compilePolicies } from "../../src/policy/compile.ts";
import { aliceWhitelist, policy } from "../policy/helpers.ts";

test("a version retired while the decision commits: the grant fails KEY_UNAVAILABLE and releases nothing", async () => {
  const deriver = new SliceKeyDeriver({ version: 1, sliceSeconds: 60, masterScalar: randomBytes(32) });
  const version = { version: 1, sliceSeconds: 60, deriver } as unknown as KeyVersion;
  const keys = { active: async () => version, get: async () => version } as unknown as KeyService;
  let commit!: () => void;
  let recorded!: () => void;
  const written = new Promise<void>((r) => {
    recorded = r;
  });
  const audit: AuditSink = {
    record: () => {
      recorded();
      return new Promise<AuditReceipt>((resolve) => {
        commit = () => resolve({ id: "r", chainId: "c", seq: 1n });
      });
    },
    apply: () => Promise.reject(new Error("not used")),
  };
  const clock = { now: () => Date.now() };
  const decider = new PolicyAccessDecider({
    policies: { compiled: () => compilePolicies([policy(aliceWhitelist)]) },
    audit,
    clock,
  });
  const service = new AccessRequestService({ db: undefined as never, keys, decider, clock });
  const alice: Principal = {
    id: "p",
    requesterId: "alice",
    department: null,
    keyId: "k",
    roles: ["reader"],
    publicKeyJwk: null,
  };
  const now = Date.now();
  const pending = service.request(alice, {
    resource: { type: "timeslice" },
    timeRange: { start: now - 3_600_000, end: now - 60_000 },
  });
  const outcome = pending.then(
    (r) => ({ ok: r }),
    (err: unknown) => ({ err }),
  );
  await written;
  // Let the derivation run (it starts on the next turn), then retire, then let the write commit.
  await new Promise((r) => setImmediate(r));
  await Bun.sleep(20);
  deriver.destroy();
  commit();
  const result = await outcome;
  expect("err" in result && result.err).toBeInstanceOf(KeyUnavailableError);
  expect(JSON.stringify(result)).not.toMatch(/privateJwk|seeds|"d":/);
});
