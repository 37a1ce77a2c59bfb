/**
 * The signed-in session: the admin API key lives only in this tab (a variable, mirrored in
 * sessionStorage so a reload keeps the tab signed in; closing the tab forgets it). Every call
 * goes through the SDK's ChronoKmsClient to the public /v1 API — the console has no endpoint of
 * its own.
 */
import { ChronoKmsClient } from "../client/api.ts";
import { ChronoKmsError } from "../client/errors.ts";

const STORAGE_KEY = "chronokms.console.apiKey";
const KEY_SHAPE = /^ckms_[a-z2-7]{16}_[A-Za-z0-9_-]{20,}$/;

export type SignInResult = { ok: true; client: ChronoKmsClient } | { ok: false; message: string };

let unauthorized: () => void = () => {};
/** Called when any API call answers 401 (the key was revoked, disabled or expired meanwhile). */
export function onUnauthorized(handler: () => void): void {
  unauthorized = handler;
}

function clientFor(apiKey: string) {
  // window.fetch must be called with window as `this`; the SDK calls its fetch as a method.
  const watched = async (input: RequestInfo | URL, init?: RequestInit) => {
    const res = await fetch(input, init);
    if (res.status === 401) unauthorized();
    return res;
  };
  return new ChronoKmsClient({
    baseUrl: location.origin,
    apiKey,
    retries: 2,
    timeoutMs: 30_000,
    fetch: watched as typeof fetch,
  });
}

/** Checks the key by making an admin call; keeps it only when the API accepts it as admin. */
export async function signIn(apiKey: string): Promise<SignInResult> {
  const key = apiKey.trim();
  if (!KEY_SHAPE.test(key)) return { ok: false, message: "That is not an API key: expected ckms_<keyId>_<secret>." };
  const client = clientFor(key);
  try {
    await client.listRequesters({ limit: 1 });
  } catch (err) {
    return { ok: false, message: signInMessage(err) };
  }
  try {
    sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // sessionStorage unavailable (private mode quota): the key stays in memory only.
  }
  return { ok: true, client };
}

function signInMessage(err: unknown): string {
  if (err instanceof ChronoKmsError) {
    if (err.status === 401)
      return "Sign-in failed: the API key was not accepted (unknown, revoked, disabled or expired).";
    if (err.status === 403) return "Sign-in failed: this API key is valid but does not have the admin role.";
    if (err.status === 429) return "Too many failed sign-ins from this address. Wait a minute and try again.";
    return `Sign-in failed: ${err.message}`;
  }
  return "Sign-in failed: the service could not be reached.";
}

export function resumeSession(): ChronoKmsClient | null {
  let key: string | null = null;
  try {
    key = sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
  return key && KEY_SHAPE.test(key) ? clientFor(key) : null;
}

export function signOut(): void {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing stored
  }
}
