/** Provider table and the refresh grant against the fake provider on a real loopback port. */
import { afterAll, describe, expect, test } from "bun:test";
import { providerFor, requestRefresh, type Provider } from "../../src/tokens/providers.ts";
import { startFakeOAuth } from "../support/fake-oauth.ts";

const fake = startFakeOAuth();
afterAll(() => fake.stop());
const conf = () => ({ clientId: fake.clientId, clientSecret: fake.clientSecret, tokenUrl: fake.url });

describe("providerFor", () => {
  const all = { GOOGLE: conf(), MICROSOFT: conf(), GITHUB: conf(), OAUTH2: conf() };
  test("maps the known integrations and sends the rest to the generic provider", () => {
    expect(providerFor("gmail", all)?.name).toBe("GOOGLE");
    expect(providerFor("google", all)?.name).toBe("GOOGLE");
    expect(providerFor("outlook", all)?.name).toBe("MICROSOFT");
    expect(providerFor("microsoft", all)?.name).toBe("MICROSOFT");
    expect(providerFor("github", all)?.name).toBe("GITHUB");
    expect(providerFor("slack", all)?.name).toBe("OAUTH2");
  });
  test("a known integration never falls back to the generic provider", () => {
    expect(providerFor("gmail", { OAUTH2: conf() })).toBeNull();
    expect(providerFor("slack", { GOOGLE: conf() })).toBeNull();
  });
});

describe("requestRefresh", () => {
  const google: Provider = { name: "GOOGLE", config: conf() };
  const generic: Provider = { name: "OAUTH2", config: conf() };

  test("ok: parses the tokens; body credentials for Google, Basic for the generic provider", async () => {
    fake.behaviour = { kind: "ok", expiresIn: 1800, rotateRefresh: true };
    const r = await requestRefresh(google, "rt-1", { timeoutMs: 2000 });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.tokens.accessToken).toBe(fake.issued.at(-1)!);
      expect(r.tokens.expiresInSeconds).toBe(1800);
      expect(r.tokens.refreshToken).toStartWith("fake-refresh-");
    }
    expect(fake.calls.at(-1)).toMatchObject({
      grantType: "refresh_token",
      refreshToken: "rt-1",
      auth: "body",
      accept: "application/json",
    });
    expect((await requestRefresh(generic, "rt-2", { timeoutMs: 2000 })).ok).toBe(true);
    expect(fake.calls.at(-1)?.auth).toBe("basic");
  });

  test("400 invalid_grant and GitHub's 200 bad_refresh_token are permanent", async () => {
    fake.behaviour = { kind: "invalid_grant" };
    expect(await requestRefresh(google, "rt", { timeoutMs: 2000 })).toEqual({
      ok: false,
      permanent: true,
      reason: "invalid_grant",
      status: 400,
    });
    fake.behaviour = { kind: "github_bad_refresh" };
    expect(await requestRefresh({ name: "GITHUB", config: conf() }, "rt", { timeoutMs: 2000 })).toMatchObject({
      ok: false,
      permanent: true,
      reason: "bad_refresh_token",
    });
  });

  test("500, wrong client credentials and a hang past the timeout are transient", async () => {
    fake.behaviour = { kind: "error500" };
    expect(await requestRefresh(google, "rt", { timeoutMs: 2000 })).toEqual({
      ok: false,
      permanent: false,
      reason: "http_500",
      status: 500,
    });
    const wrong: Provider = { name: "GOOGLE", config: { ...conf(), clientSecret: "nope" } };
    expect(await requestRefresh(wrong, "rt", { timeoutMs: 2000 })).toMatchObject({
      ok: false,
      permanent: false,
      reason: "invalid_client",
    });
    fake.behaviour = { kind: "hang" };
    const started = performance.now();
    expect(await requestRefresh(google, "rt", { timeoutMs: 300 })).toEqual({
      ok: false,
      permanent: false,
      reason: "timeout",
    });
    expect(performance.now() - started).toBeLessThan(3000);
  });

  test("an unreachable endpoint is a transient network failure", async () => {
    const down: Provider = { name: "GOOGLE", config: { ...conf(), tokenUrl: "http://127.0.0.1:1/token" } };
    expect(await requestRefresh(down, "rt", { timeoutMs: 2000 })).toMatchObject({
      ok: false,
      permanent: false,
      reason: "network",
    });
  });
});
