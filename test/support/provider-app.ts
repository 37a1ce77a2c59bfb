/**
 * The set-up the token suites that talk to a provider share: per database, a fake OAuth provider
 * and a token test app whose Google provider points at it, started before the suite's tests and
 * stopped after them. Each suite keeps its own between-test resets (they differ).
 */
import { afterAll, beforeAll } from "bun:test";
import type { Clock } from "../../src/clock.ts";
import type { DbHandle } from "./databases.ts";
import { fakeGoogleEnv, startFakeOAuth, type FakeOAuth } from "./fake-oauth.ts";
import { tokenTestApp, type TokenTestApp } from "../tokens/helpers.ts";

export function fakeProviderApp(
  h: DbHandle,
  opts: { clock?: Clock; env?: (fake: FakeOAuth) => Record<string, string> },
  ready: (a: TokenTestApp, fake: FakeOAuth) => void,
): void {
  let a: TokenTestApp | undefined;
  let fake: FakeOAuth | undefined;
  beforeAll(async () => {
    fake = startFakeOAuth();
    a = await tokenTestApp(h.db, { clock: opts.clock, env: { ...fakeGoogleEnv(fake), ...opts.env?.(fake) } });
    ready(a, fake);
  }, 60_000);
  afterAll(async () => {
    await a?.close();
    await fake?.stop();
  });
}
