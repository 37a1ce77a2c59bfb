/**
 * Crypto errors carry no transport knowledge; src/http/errors.ts alone gives them their wire code
 * and status, the same ones the API returned when crypto threw the app's errors: a decryption
 * failure is 422 DECRYPTION_FAILED, bad input to a primitive or a signature that does not verify
 * 400 VALIDATION_FAILED, and a KEK problem a generic 500 that echoes nothing.
 */
import { expect, test } from "bun:test";
import { Hono } from "hono";
import {
  CryptoInputError,
  DecryptionFailedError,
  KekFormatError,
  KekMismatchError,
  SignatureVerificationError,
} from "../../src/crypto/errors.ts";
import type { AppEnv } from "../../src/http/context.ts";
import { respondWithError, statusByCode, wireCodeOfCrypto } from "../../src/http/errors.ts";

async function answer(err: Error) {
  const app = new Hono<AppEnv>();
  app.use(async (c, next) => {
    c.set("requestId", "req-1");
    await next();
  });
  app.get("/", () => {
    throw err;
  });
  app.onError((e, c) => respondWithError(e, c));
  const res = await app.request("/");
  return {
    status: res.status,
    body: (await res.json()) as { error: { code: string; message: string; requestId?: string } },
  };
}

test("each crypto error has its wire code and the status the API always returned", async () => {
  const cases: Array<[Error, number, string, string]> = [
    [new DecryptionFailedError(new Error("bad tag")), 422, "DECRYPTION_FAILED", "decryption failed"],
    [
      new CryptoInputError("timestamp is beyond the last time slice (2^32-1)"),
      400,
      "VALIDATION_FAILED",
      "timestamp is beyond the last time slice (2^32-1)",
    ],
    [new SignatureVerificationError(), 400, "VALIDATION_FAILED", "signature verification failed"],
    [
      new KekMismatchError("master key version 1 was wrapped with a different KEK"),
      500,
      "KEK_MISMATCH",
      "internal error",
    ],
    [new KekFormatError("MASTER_KEY_ENCRYPTION_KEY is not set"), 500, "CONFIG_INVALID", "internal error"],
  ];
  for (const [err, status, code, message] of cases) {
    const a = await answer(err);
    expect(a.status).toBe(status);
    expect(a.body.error).toEqual({ code, message, requestId: "req-1" });
  }
  // Every crypto code has a wire code, and every wire code a status.
  for (const code of Object.values(wireCodeOfCrypto)) expect(statusByCode[code]).toBeGreaterThanOrEqual(400);
});
