/**
 * Worker thread for bulk seeding: seals token fields exactly as `KeyService.seal` does
 * (`encryptEnvelope` to the active version's slice public key, ctx from the vault's
 * `tokenContext`), so seeding a million rows uses both cores.
 */
import { createPublicKey } from "node:crypto";
import { encryptEnvelope } from "../src/crypto/index.ts";
import { tokenContext } from "../src/tokens/record.ts";
import { benchAccessToken, benchRefreshToken, benchUserId, type SealJob, type SealedRow } from "./seal-job.ts";

declare const self: Worker;

self.onmessage = async (ev: MessageEvent<SealJob>) => {
  const j = ev.data;
  const publicKey = createPublicKey({ key: { kty: "EC", crv: "P-256", x: j.publicJwk.x, y: j.publicJwk.y }, format: "jwk" });
  const seal = (plain: string, userId: string, field: "access" | "refresh") =>
    encryptEnvelope(plain, { publicKey, kid: j.kid, ts: j.ts, ctx: tokenContext(j.integration, userId, field), sliceSeconds: j.sliceSeconds });
  const rows: SealedRow[] = [];
  for (let i = j.from; i < j.from + j.count; i++) {
    const userId = benchUserId(i);
    rows.push({ userId, accessToken: await seal(benchAccessToken(i), userId, "access"), refreshToken: await seal(benchRefreshToken(i), userId, "refresh"), keyVersion: j.version });
  }
  self.postMessage(rows);
};
