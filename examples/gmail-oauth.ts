/**
 * Example: an OAuth callback that stores a user's Gmail tokens in chronokms, and a background
 * worker that reads them with `refresh: "auto"`: a token that expires within five minutes is
 * refreshed by chronokms (one upstream call, however many workers ask) before it is returned.
 *
 * The callback exchanges the authorization code at the provider's token endpoint (give it
 * GOOGLE_TOKEN_URL / GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET, the same ones chronokms is started
 * with); without them it stands in for the exchange with demo tokens, and chronokms returns them as
 * stored because it has no provider to refresh against.
 *
 *   CHRONOKMS_URL=http://127.0.0.1:3000 CHRONOKMS_WRITER_KEY=ckms_… CHRONOKMS_READER_KEY=ckms_… bun examples/gmail-oauth.ts
 */
import { ChronoKmsClient, type TokenInput, type TokenRecord } from "chronokms/client";

export interface OAuthProvider {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
}

export interface OAuthDemoOptions {
  baseUrl: string;
  /** The web app's key (writer role): it stores tokens. */
  writerKey: string;
  /** The worker's key (reader role, whitelisted): it reads them. */
  readerKey: string;
  provider?: OAuthProvider;
  userId?: string;
  log?: (line: string) => void;
}

/** The authorization-code exchange (RFC 6749 §4.1.3), mapped to chronokms's token body. */
export async function exchangeCode(provider: OAuthProvider, code: string, redirectUri: string): Promise<TokenInput> {
  const res = await fetch(provider.tokenUrl, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri,
      client_id: provider.clientId,
      client_secret: provider.clientSecret,
    }),
  });
  if (!res.ok) throw new Error(`code exchange failed: HTTP ${res.status}`);
  const t = (await res.json()) as {
    access_token: string;
    refresh_token?: string;
    expires_in?: number;
    scope?: string;
    token_type?: string;
  };
  return {
    accessToken: t.access_token,
    ...(t.refresh_token ? { refreshToken: t.refresh_token } : {}),
    ...(t.expires_in ? { expiresAt: Date.now() + t.expires_in * 1000 } : {}),
    ...(t.scope ? { scope: t.scope } : {}),
    ...(t.token_type ? { tokenType: t.token_type } : {}),
  };
}

/**
 * `GET /oauth/google/callback?code=…&state=<userId>`: exchange the code, store the tokens under
 * (gmail, userId). A real app checks `state` against the session that started the flow.
 */
export function callbackHandler(deps: {
  client: ChronoKmsClient;
  exchange: (code: string, redirectUri: string) => Promise<TokenInput>;
}) {
  return async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (url.pathname !== "/oauth/google/callback") return new Response("not found", { status: 404 });
    const code = url.searchParams.get("code");
    const userId = url.searchParams.get("state");
    if (!code || !userId) return new Response("missing code or state", { status: 400 });
    const tokens = await deps.exchange(code, `${url.origin}${url.pathname}`);
    const { created } = await deps.client.putToken("gmail", userId, tokens);
    return new Response(`Gmail ${created ? "connected" : "reconnected"} for ${userId}`, { status: 200 });
  };
}

/** The worker: reads the user's Gmail token, refreshed by chronokms when it is about to expire. */
export function readGmailToken(client: ChronoKmsClient, userId: string): Promise<TokenRecord> {
  return client.getToken("gmail", userId, { refresh: "auto", purpose: "sync inbox" });
}

/** Without a provider: demo tokens that expire in a minute, as a provider's short-lived ones would. */
const standInExchange = async (code: string): Promise<TokenInput> => ({
  accessToken: `demo-access-for-${code}`,
  refreshToken: `demo-refresh-for-${code}`,
  expiresAt: Date.now() + 60_000,
  tokenType: "Bearer",
});

export async function main(
  opts: OAuthDemoOptions,
): Promise<{ stored: string; first: TokenRecord; second: TokenRecord }> {
  const log = opts.log ?? console.log;
  const userId = opts.userId ?? "alice@example.com";
  const app = new ChronoKmsClient({ baseUrl: opts.baseUrl, apiKey: opts.writerKey });
  const worker = new ChronoKmsClient({ baseUrl: opts.baseUrl, apiKey: opts.readerKey });
  const provider = opts.provider;
  const exchange = provider
    ? (code: string, redirectUri: string) => exchangeCode(provider, code, redirectUri)
    : standInExchange;

  // The web app's callback, on a real port; the "browser" below follows the provider's redirect.
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: callbackHandler({ client: app, exchange }) });
  let stored: string;
  try {
    const res = await fetch(
      `http://127.0.0.1:${server.port}/oauth/google/callback?code=demo-code-${Date.now()}&state=${encodeURIComponent(userId)}`,
    );
    stored = await res.text();
    if (!res.ok) throw new Error(`callback failed: ${res.status} ${stored}`);
  } finally {
    await server.stop(true);
  }
  log(`callback: ${stored}`);

  const first = await readGmailToken(worker, userId);
  log(`worker: got a token expiring ${first.expiresAt ?? "never"}; refreshed by chronokms: ${first.refreshed}`);
  const second = await readGmailToken(worker, userId);
  log(`worker: read again; refreshed: ${second.refreshed}; same token: ${second.accessToken === first.accessToken}`);
  return { stored, first, second };
}

if (import.meta.main) {
  const baseUrl = process.env.CHRONOKMS_URL ?? "http://127.0.0.1:3000";
  const writerKey = process.env.CHRONOKMS_WRITER_KEY;
  const readerKey = process.env.CHRONOKMS_READER_KEY;
  if (!writerKey || !readerKey) {
    console.error("set CHRONOKMS_WRITER_KEY and CHRONOKMS_READER_KEY (bun run db:seed prints both)");
    process.exit(1);
  }
  const { GOOGLE_TOKEN_URL: tokenUrl, GOOGLE_CLIENT_ID: clientId, GOOGLE_CLIENT_SECRET: clientSecret } = process.env;
  await main({
    baseUrl,
    writerKey,
    readerKey,
    ...(tokenUrl && clientId && clientSecret ? { provider: { tokenUrl, clientId, clientSecret } } : {}),
  });
}
