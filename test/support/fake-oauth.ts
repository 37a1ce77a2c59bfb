/**
 * A fake OAuth provider on a real loopback port, for refresh, revocation and proxy tests: a token
 * endpoint with scripted behaviour (new tokens, rotated refresh tokens, 400 invalid_grant, 500,
 * hang), call counting, and checks of the grant and client credentials the way a real provider
 * would refuse them; an RFC 7009 revocation endpoint (`/revoke`); and an API under `/api/` that
 * answers only a bearer it issued or was told to accept. It also answers the authorization-code
 * exchange (any code; access + refresh token, `codeExpiresIn` seconds) for the OAuth example.
 */

export type FakeBehaviour =
  | { kind: "ok"; expiresIn?: number; rotateRefresh?: boolean; delayMs?: number }
  /**
   * A provider that rotates refresh tokens strictly: each refresh issues a new one and the one
   * used is dead — except once, as grace, while its successor has never been used (so a client
   * that crashed before storing the successor is not locked out). Anything else: invalid_grant.
   */
  | { kind: "strict-rotation"; expiresIn?: number; delayMs?: number }
  | { kind: "invalid_grant" }
  | { kind: "error500" }
  | { kind: "hang" }
  /** GitHub style: HTTP 200 with an OAuth error member. */
  | { kind: "github_bad_refresh" };

export interface FakeCall {
  grantType: string | null;
  refreshToken: string | null;
  clientId: string | null;
  auth: "basic" | "body" | "none";
  accept: string | null;
}

export interface FakeApiCall {
  method: string;
  path: string;
  search: string;
  authorization: string | null;
  headers: Record<string, string>;
  body: string;
}

export interface FakeRevocation {
  token: string | null;
  tokenTypeHint: string | null;
  clientId: string | null;
}

export interface FakeOAuth {
  /** strict-rotation: the newest refresh token, the one before it (grace), refusals. */
  rotation: { current: string | null; previous: string | null; rejected: number };
  /** The token endpoint. */
  url: string;
  /** http://127.0.0.1:port (the API lives under /api, revocation at /revoke). */
  origin: string;
  /** Bearers the API accepts besides the access tokens this fake issued. */
  accepted: Set<string>;
  apiCalls: FakeApiCall[];
  revocations: FakeRevocation[];
  revokeBehaviour: "ok" | "error500" | "hang" | "unsupported";
  clientId: string;
  clientSecret: string;
  behaviour: FakeBehaviour;
  calls: FakeCall[];
  /** Access tokens handed out, in order. */
  issued: string[];
  stop(): Promise<void>;
}

/** The service environment that points its Google provider at this fake (client and token endpoint). */
export function fakeGoogleEnv(fake: FakeOAuth): Record<string, string> {
  return { GOOGLE_CLIENT_ID: fake.clientId, GOOGLE_CLIENT_SECRET: fake.clientSecret, GOOGLE_TOKEN_URL: fake.url };
}

export function startFakeOAuth(
  opts: { clientId?: string; clientSecret?: string; behaviour?: FakeBehaviour; codeExpiresIn?: number } = {},
): FakeOAuth {
  const clientId = opts.clientId ?? "fake-client";
  const clientSecret = opts.clientSecret ?? "fake-secret";
  const hanging = new Set<() => void>();
  const state: FakeOAuth = {
    rotation: { current: null, previous: null, rejected: 0 },
    url: "",
    origin: "",
    accepted: new Set(),
    apiCalls: [],
    revocations: [],
    revokeBehaviour: "ok",
    clientId,
    clientSecret,
    behaviour: opts.behaviour ?? { kind: "ok" },
    calls: [],
    issued: [],
    async stop() {
      for (const release of hanging) release();
      await server.stop(true);
    },
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname.startsWith("/api/")) return api(req, url);
      if (url.pathname === "/revoke" && req.method === "POST") return revoke(req);
      if (req.method !== "POST" || url.pathname !== "/token") return new Response("not found", { status: 404 });
      const form = new URLSearchParams(await req.text());
      let id = form.get("client_id");
      let secret = form.get("client_secret");
      let auth: FakeCall["auth"] = id ? "body" : "none";
      const header = req.headers.get("authorization");
      if (header?.startsWith("Basic ")) {
        const [u, p] = Buffer.from(header.slice(6), "base64").toString("utf8").split(":");
        id = decodeURIComponent(u ?? "");
        secret = decodeURIComponent(p ?? "");
        auth = "basic";
      }
      const call: FakeCall = {
        grantType: form.get("grant_type"),
        refreshToken: form.get("refresh_token"),
        clientId: id,
        auth,
        accept: req.headers.get("accept"),
      };
      state.calls.push(call);
      if (id !== clientId || secret !== clientSecret)
        return Response.json({ error: "invalid_client" }, { status: 401 });
      if (call.grantType === "authorization_code" && form.get("code")) {
        const n = state.issued.length + 1;
        const accessToken = `fake-access-${n}-${crypto.randomUUID()}`;
        state.issued.push(accessToken);
        return Response.json({
          access_token: accessToken,
          refresh_token: `fake-refresh-${n}-${crypto.randomUUID()}`,
          expires_in: opts.codeExpiresIn ?? 3600,
          token_type: "Bearer",
          scope: "https://www.googleapis.com/auth/gmail.readonly",
        });
      }
      if (call.grantType !== "refresh_token" || !call.refreshToken)
        return Response.json({ error: "unsupported_grant_type" }, { status: 400 });
      const b = state.behaviour;
      switch (b.kind) {
        case "invalid_grant":
          return Response.json(
            { error: "invalid_grant", error_description: "Token has been expired or revoked." },
            { status: 400 },
          );
        case "github_bad_refresh":
          return Response.json({
            error: "bad_refresh_token",
            error_description: "The refresh token passed is incorrect or expired.",
          });
        case "error500":
          return new Response("upstream broke", { status: 500 });
        case "hang":
          await new Promise<void>((resolve) => hanging.add(resolve));
          return new Response("too late", { status: 503 });
        case "strict-rotation": {
          const r = state.rotation;
          const used = call.refreshToken;
          if (used === r.current) r.previous = r.current;
          else if (used !== null && used === r.previous)
            r.previous = null; // grace, once
          else {
            r.rejected += 1;
            return Response.json(
              { error: "invalid_grant", error_description: "refresh token already rotated" },
              { status: 400 },
            );
          }
          if (b.delayMs) await Bun.sleep(b.delayMs);
          const n = state.issued.length + 1;
          const accessToken = `fake-access-${n}-${crypto.randomUUID()}`;
          const refreshToken = `fake-rotated-${n}-${crypto.randomUUID()}`;
          state.issued.push(accessToken);
          r.current = refreshToken;
          return Response.json({
            access_token: accessToken,
            refresh_token: refreshToken,
            expires_in: b.expiresIn ?? 60,
            token_type: "Bearer",
          });
        }
        case "ok": {
          if (b.delayMs) await Bun.sleep(b.delayMs);
          const n = state.issued.length + 1;
          const accessToken = `fake-access-${n}-${crypto.randomUUID()}`;
          state.issued.push(accessToken);
          return Response.json({
            access_token: accessToken,
            expires_in: b.expiresIn ?? 3600,
            token_type: "Bearer",
            scope: "mail.read",
            ...(b.rotateRefresh ? { refresh_token: `fake-refresh-${n}-${crypto.randomUUID()}` } : {}),
          });
        }
      }
    },
  });
  async function api(req: Request, url: URL): Promise<Response> {
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => {
      headers[k] = v;
    });
    const body = await req.text();
    const authorization = req.headers.get("authorization");
    state.apiCalls.push({ method: req.method, path: url.pathname, search: url.search, authorization, headers, body });
    const bearer = authorization?.startsWith("Bearer ") ? authorization.slice(7) : null;
    if (!bearer || !(state.issued.includes(bearer) || state.accepted.has(bearer))) {
      return Response.json(
        { message: "Bad credentials" },
        { status: 401, headers: { "WWW-Authenticate": 'Bearer error="invalid_token"' } },
      );
    }
    switch (url.pathname) {
      case "/api/redirect-away":
        return new Response(null, { status: 302, headers: { Location: "http://127.0.0.2:9/stolen" } });
      case "/api/redirect-here":
        return new Response(null, { status: 302, headers: { Location: "/api/user" } });
      case "/api/big":
        return new Response("x".repeat(Number(url.searchParams.get("n") ?? "1000")));
      default:
        return Response.json(
          { ok: true, method: req.method, path: url.pathname, search: url.search, received: body.length },
          { status: req.method === "POST" ? 201 : 200, headers: { "Set-Cookie": "provider=1", "X-Provider": "fake" } },
        );
    }
  }

  async function revoke(req: Request): Promise<Response> {
    const form = new URLSearchParams(await req.text());
    state.revocations.push({
      token: form.get("token"),
      tokenTypeHint: form.get("token_type_hint"),
      clientId: form.get("client_id"),
    });
    switch (state.revokeBehaviour) {
      case "error500":
        return new Response("revocation broke", { status: 503 });
      case "unsupported":
        return Response.json({ error: "unsupported_token_type" }, { status: 400 });
      case "hang":
        await new Promise<void>((resolve) => hanging.add(resolve));
        return new Response("too late", { status: 503 });
      case "ok":
        // RFC 7009 §2.2: 200 whether or not the token was valid.
        return new Response(null, { status: 200 });
    }
  }

  state.url = `http://127.0.0.1:${server.port}/token`;
  state.origin = `http://127.0.0.1:${server.port}`;
  return state;
}
