/**
 * A fake OAuth token endpoint on a real loopback port, for refresh tests: scripted behaviour
 * (new tokens, 400 invalid_grant, 500, hang), call counting, and checks of the grant and client
 * credentials the way a real provider would refuse them. It also answers the authorization-code
 * exchange (any code; access + refresh token, `codeExpiresIn` seconds) for the OAuth example.
 */

export type FakeBehaviour =
  | { kind: "ok"; expiresIn?: number; rotateRefresh?: boolean; delayMs?: number }
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

export interface FakeOAuth {
  url: string;
  clientId: string;
  clientSecret: string;
  behaviour: FakeBehaviour;
  calls: FakeCall[];
  /** Access tokens handed out, in order. */
  issued: string[];
  stop(): Promise<void>;
}

export function startFakeOAuth(opts: { clientId?: string; clientSecret?: string; behaviour?: FakeBehaviour; codeExpiresIn?: number } = {}): FakeOAuth {
  const clientId = opts.clientId ?? "fake-client";
  const clientSecret = opts.clientSecret ?? "fake-secret";
  const hanging = new Set<() => void>();
  const state: FakeOAuth = {
    url: "",
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
      if (req.method !== "POST" || new URL(req.url).pathname !== "/token") return new Response("not found", { status: 404 });
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
      const call: FakeCall = { grantType: form.get("grant_type"), refreshToken: form.get("refresh_token"), clientId: id, auth, accept: req.headers.get("accept") };
      state.calls.push(call);
      if (id !== clientId || secret !== clientSecret) return Response.json({ error: "invalid_client" }, { status: 401 });
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
      if (call.grantType !== "refresh_token" || !call.refreshToken) return Response.json({ error: "unsupported_grant_type" }, { status: 400 });
      const b = state.behaviour;
      switch (b.kind) {
        case "invalid_grant":
          return Response.json({ error: "invalid_grant", error_description: "Token has been expired or revoked." }, { status: 400 });
        case "github_bad_refresh":
          return Response.json({ error: "bad_refresh_token", error_description: "The refresh token passed is incorrect or expired." });
        case "error500":
          return new Response("upstream broke", { status: 500 });
        case "hang":
          await new Promise<void>((resolve) => hanging.add(resolve));
          return new Response("too late", { status: 503 });
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
  state.url = `http://127.0.0.1:${server.port}/token`;
  return state;
}
