/**
 * Webhook crypto, pure: the signing secret sealed at rest (AES-256-GCM under a key derived from
 * the KEK with HKDF-SHA256, RFC 5869; the webhook id as AAD, so a sealed secret moved to another
 * row fails), and the delivery signature (HMAC-SHA256 over `timestamp + "." + body`).
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { DecryptionFailedError } from "./errors.ts";

const INFO = "chronokms/v1/webhook-secret";
const SALT = "chronokms/v1/webhook-secret-salt";

export function webhookSecretKey(kek: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", kek, SALT, INFO, 32));
}

/** `whsec_` + 32 random bytes base64url: what the admin receives once and the receiver keeps. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64url")}`;
}

/** `v1.<iv>.<ciphertext+tag>` (base64url). */
export function sealWebhookSecret(key: Uint8Array, webhookId: string, secret: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(Buffer.from(`webhook:${webhookId}`));
  const ct = Buffer.concat([c.update(secret, "utf8"), c.final(), c.getAuthTag()]);
  return `v1.${iv.toString("base64url")}.${ct.toString("base64url")}`;
}

export function openWebhookSecret(key: Uint8Array, webhookId: string, sealed: string): string {
  try {
    const [v, ivB, ctB] = sealed.split(".");
    if (v !== "v1" || !ivB || !ctB) throw new Error("format");
    const iv = Buffer.from(ivB, "base64url");
    const all = Buffer.from(ctB, "base64url");
    if (iv.length !== 12 || all.length < 17) throw new Error("length");
    const d = createDecipheriv("aes-256-gcm", key, iv);
    d.setAAD(Buffer.from(`webhook:${webhookId}`));
    d.setAuthTag(all.subarray(all.length - 16));
    return Buffer.concat([d.update(all.subarray(0, all.length - 16)), d.final()]).toString("utf8");
  } catch (err) {
    throw new DecryptionFailedError(err);
  }
}

/** Hex HMAC-SHA256(secret, `${timestamp}.${body}`); timestamp in Unix seconds. */
export function webhookSignature(secret: string, timestamp: number, body: string): string {
  return createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}

/** The `Chronokms-Signature` header value: `t=<unix seconds>,v1=<hex>`. */
export function signatureHeader(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${webhookSignature(secret, timestamp, body)}`;
}

/**
 * What a receiver does (also the README snippet): parse the header, refuse a timestamp outside
 * the replay window, compare in constant time.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string,
  body: string,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  const parts = Object.fromEntries(header.split(",").map((p) => p.split("=", 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isSafeInteger(t) || Math.abs(nowSeconds - t) > toleranceSeconds || typeof parts.v1 !== "string")
    return false;
  const expected = Buffer.from(webhookSignature(secret, t, body), "hex");
  const given = Buffer.from(parts.v1, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}
