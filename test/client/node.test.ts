/**
 * The SDK is usable from Node: built with `bun run build:client`, it decrypts a grant's data (also
 * from a grant sealed to the requester's key, on Node's WebCrypto), and its failures are its
 * exported error classes with their stable codes.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../src/db/migration-files.ts";
import { generateMasterKeyPair, masterScalar } from "../../src/crypto/master-key.ts";
import { SliceKeyDeriver, sliceRange } from "../../src/crypto/slice-keys.ts";
import { deriveCover } from "../../src/crypto/ggm.ts";
import { encryptEnvelope } from "../../src/crypto/envelope.ts";
import { toBase64url } from "../../src/crypto/bytes.ts";
import { sealEcdhEs } from "../../src/crypto/ecdh-es.ts";
import { GRANT_JWE_TYP } from "../../src/access/grants.ts";

const dir = mkdtempSync(join(tmpdir(), "chronokms-node-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a Node process decrypts with the built SDK's DataViewer", async () => {
  const build = Bun.spawnSync(
    [process.execPath, "build", "src/client/index.ts", "--target=node", `--outfile=${join(dir, "client.js")}`],
    { cwd: projectRoot },
  );
  expect(build.exitCode).toBe(0);

  const pair = await generateMasterKeyPair();
  const deriver = new SliceKeyDeriver({ masterScalar: masterScalar(pair.privateJwk), version: 1, sliceSeconds: 60 });
  const slice = 29_000_000;
  const key = await deriver.get(slice);
  const jwe = await encryptEnvelope("hello from bun", {
    publicKey: key.publicKey,
    kid: key.kid,
    ts: sliceRange(slice, 60).startMs,
    ctx: "c",
  });
  const seeds = deriveCover(deriver.rootSeed, slice, slice + 3).map((n) => ({
    depth: n.depth,
    index: n.index,
    seed: toBase64url(n.seed),
  }));
  const grant = {
    id: "g",
    granted: true,
    expiresAt: "",
    keyVersion: 1,
    sliceSeconds: 60,
    slices: { from: slice, to: slice + 3 },
    keys: [],
    seeds,
  };
  const requester = await generateMasterKeyPair();
  const { keys: _k, seeds: _s, ...head } = grant;
  const sealed = {
    ...head,
    encrypted: await sealEcdhEs(JSON.stringify({ keys: [], seeds }), requester.publicJwk, {
      typ: GRANT_JWE_TYP,
      cty: "json",
      gid: grant.id,
      ver: grant.keyVersion,
      slices: grant.slices,
    }),
  };
  writeFileSync(join(dir, "input.json"), JSON.stringify({ grant, jwe, sealed, privateKeyJwk: requester.privateJwk }));
  writeFileSync(
    join(dir, "run.mjs"),
    `import { readFileSync } from "node:fs";
import { DataViewer, DecryptionFailedError, OutsideGrantError } from "./client.js";
const { grant, jwe, sealed, privateKeyJwk } = JSON.parse(readFileSync(new URL("./input.json", import.meta.url)));
const viewer = await DataViewer.fromGrant(grant);
console.log(await viewer.decryptToString(jwe, { expectedCtx: "c" }));
const unsealed = await DataViewer.fromGrant(sealed, { privateKeyJwk });
console.log(await unsealed.decryptToString(jwe, { expectedCtx: "c" }));
const failure = (p, Cls) => p.then(() => "resolved", (e) => [e.constructor.name, e.code, e instanceof Cls].join(" "));
console.log(await failure(viewer.decrypt(jwe, { expectedCtx: "other" }), DecryptionFailedError));
const narrow = await DataViewer.fromGrant({ ...grant, slices: { from: grant.slices.from + 1, to: grant.slices.to } });
console.log(await failure(narrow.decrypt(jwe, { expectedCtx: "c" }), OutsideGrantError));`,
  );
  const node = Bun.spawnSync(["node", join(dir, "run.mjs")]);
  expect(node.stderr.toString()).toBe("");
  expect(node.stdout.toString().trim().split("\n")).toEqual([
    "hello from bun",
    "hello from bun",
    "DecryptionFailedError DECRYPTION_FAILED true",
    "OutsideGrantError OUTSIDE_GRANT true",
  ]);
}, 30_000);
