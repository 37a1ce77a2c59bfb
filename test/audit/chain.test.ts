/** The chain's byte layout: the fast body builder equals the documented canonicalJson array, and the hash is SHA-256 over prevHash "\n" body. */
import { expect, test } from "bun:test";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { canonicalJson } from "../../src/crypto/canonical-json.ts";
import { CHAIN_VERSION_TAG, genesisHash, rowBody, rowHash, type ChainedFields } from "../../src/audit/chain.ts";

const decimal = fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }).map(String);
const fields: fc.Arbitrary<ChainedFields> = fc.record({
  id: fc.uuid(),
  chainId: fc.string(),
  seq: decimal,
  timestamp: decimal,
  eventType: fc.string(),
  actor: fc.string({ unit: "binary" }),
  target: fc.option(fc.string({ unit: "grapheme" }), { nil: null }),
  startTime: fc.option(decimal, { nil: null }),
  endTime: fc.option(decimal, { nil: null }),
  success: fc.boolean(),
  details: fc.dictionary(
    fc.string(),
    fc.jsonValue({ noUnicodeString: false }).filter((v) => !Object.is(v, -0)),
  ),
});

test("rowBody is canonicalJson of the documented array; rowHash = SHA-256(prevHash \\n body)", () => {
  fc.assert(
    fc.property(fields, fc.stringMatching(/^[0-9a-f]{64}$/), (f, prev) => {
      const reference = canonicalJson([
        CHAIN_VERSION_TAG,
        f.id,
        f.chainId,
        f.seq,
        f.timestamp,
        f.eventType,
        f.actor,
        f.target,
        f.startTime,
        f.endTime,
        f.success,
        f.details,
      ]);
      expect(rowBody(f)).toBe(reference);
      expect(rowHash(prev, f)).toBe(createHash("sha256").update(`${prev}\n${reference}`, "utf8").digest("hex"));
    }),
    { numRuns: 300 },
  );
});

test("known answer: genesis and one row", () => {
  expect(genesisHash("c")).toBe(createHash("sha256").update("chronokms.audit.genesis\nc").digest("hex"));
  const f: ChainedFields = {
    id: "i",
    chainId: "c",
    seq: "1",
    timestamp: "2",
    eventType: "E",
    actor: "a",
    target: null,
    startTime: null,
    endTime: "3",
    success: true,
    details: { b: 1, a: [true, "x"] },
  };
  expect(rowBody(f)).toBe('["chronokms.audit.v1","i","c","1","2","E","a",null,null,"3",true,{"a":[true,"x"],"b":1}]');
});
