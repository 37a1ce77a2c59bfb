/**
 * Webhooks end to end on both databases: a local receiver registered for every event type gets
 * token.deleted, token.degraded, token.recovered, token.needs_reauth, key.rotated and
 * audit.verify_failed exactly as documented (body shape, headers, valid HMAC signature inside the
 * replay window) after it was down for a while (retries with backoff, state visible to admins);
 * no payload holds a token, refresh token, API key or the webhook secret; the secret is not
 * stored in the clear.
 */
import { expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import type { FakeOAuth } from "../support/fake-oauth.ts";
import { fakeProviderApp } from "../support/provider-app.ts";
import { ManualClock, toJson, type TokenTestApp } from "../tokens/helpers.ts";
import { verifyWebhookSignature } from "../../src/crypto/webhook.ts";
import { WEBHOOK_EVENT_TYPES } from "../../src/webhooks/events.ts";

interface Received {
  headers: Record<string, string>;
  body: string;
}

function startReceiver(port = 0) {
  const received: Received[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port,
    async fetch(req) {
      const headers: Record<string, string> = {};
      req.headers.forEach((v, k) => {
        headers[k] = v;
      });
      received.push({ headers, body: await req.text() });
      return new Response(null, { status: 204 });
    },
  });
  return { received, port: server.port!, stop: () => server.stop(true) };
}

const T0 = Date.UTC(2026, 2, 9, 10, 0, 0);

describeEachDb("webhooks", (h) => {
  let a: TokenTestApp;
  let fake: FakeOAuth;
  const clock = new ManualClock(T0);
  fakeProviderApp(
    h,
    {
      clock,
      env: () => ({
        WEBHOOK_POLL_MS: "0",
        WEBHOOK_RETRY_BASE_MS: "1000",
        WEBHOOK_TIMEOUT_MS: "1000",
      }),
    },
    (app, f) => {
      a = app;
      fake = f;
    },
  );

  test("registration: secret once, admin only, bad input 400; the stored secret is not the secret", async () => {
    expect((await a.call(a.admin, "POST", "/v1/webhooks", { url: "ftp://x", events: ["token.deleted"] })).status).toBe(
      400,
    );
    expect(
      (await a.call(a.admin, "POST", "/v1/webhooks", { url: "http://127.0.0.1:9/x", events: ["token.exploded"] }))
        .status,
    ).toBe(400);
    expect((await a.call(a.admin, "POST", "/v1/webhooks", { url: "http://127.0.0.1:9/x", events: [] })).status).toBe(
      400,
    );
    expect(
      (await a.call(a.writer, "POST", "/v1/webhooks", { url: "http://127.0.0.1:9/x", events: ["token.deleted"] }))
        .status,
    ).toBe(403);
    const res = await a.call(a.admin, "POST", "/v1/webhooks", {
      url: "http://127.0.0.1:9/x",
      events: ["key.rotated"],
      description: "scratch",
    });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: string; secret: string };
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    const stored = await h.db.prisma.webhook.findUniqueOrThrow({ where: { id: created.id } });
    expect(toJson(stored)).not.toContain(created.secret.slice(6));
    const listed = await (await a.call(a.admin, "GET", "/v1/webhooks")).text();
    expect(listed).not.toContain(created.secret);
    expect((await a.call(a.admin, "DELETE", `/v1/webhooks/${created.id}`)).status).toBe(204);
    expect((await a.call(a.admin, "DELETE", `/v1/webhooks/${created.id}`)).status).toBe(404);
  });

  test("every event reaches a receiver that was down, signed, exactly as documented, without secrets", async () => {
    const first = startReceiver();
    const port = first.port;
    const reg = await a.call(a.admin, "POST", "/v1/webhooks", {
      url: `http://127.0.0.1:${port}/hooks`,
      events: [...WEBHOOK_EVENT_TYPES],
    });
    expect(reg.status).toBe(201);
    const hook = (await reg.json()) as { id: string; secret: string };
    // The receiver goes down before anything happens.
    first.stop();

    // token.deleted
    expect(
      (
        await a.call(a.writer, "PUT", "/v1/tokens/github/wh-1", {
          accessToken: "AT-SECRET-1",
          refreshToken: "RT-SECRET-1",
        })
      ).status,
    ).toBe(201);
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/github/wh-1")).status).toBe(204);
    // token.degraded (5xx on refresh), then token.recovered
    expect(
      (
        await a.call(a.writer, "PUT", "/v1/tokens/gmail/wh-2", {
          accessToken: "AT-SECRET-2",
          refreshToken: "RT-SECRET-2",
          expiresAt: T0 + 60_000,
        })
      ).status,
    ).toBe(201);
    fake.behaviour = { kind: "error500" };
    expect((await a.call(a.reader, "GET", "/v1/tokens/gmail/wh-2")).status).toBe(200);
    fake.behaviour = { kind: "ok", rotateRefresh: true };
    clock.t += 2 * 60_000; // past the refresh backoff window
    expect((await a.call(a.reader, "GET", "/v1/tokens/gmail/wh-2")).status).toBe(200);
    // token.needs_reauth
    expect(
      (
        await a.call(a.writer, "PUT", "/v1/tokens/gmail/wh-3", {
          accessToken: "AT-SECRET-3",
          refreshToken: "RT-SECRET-3",
          expiresAt: clock.t + 60_000,
        })
      ).status,
    ).toBe(201);
    fake.behaviour = { kind: "invalid_grant" };
    expect((await a.call(a.reader, "GET", "/v1/tokens/gmail/wh-3")).status).toBe(200);
    fake.behaviour = { kind: "ok" };
    // key.rotated
    expect((await a.call(a.admin, "POST", "/v1/keys/rotate")).status).toBeLessThan(300);
    // audit.verify_failed: a forged row inserted by someone with SQL access
    await h.db.prisma
      .$executeRaw`INSERT INTO audit_logs (id, seq, "chainId", timestamp, "eventType", actor, target, "startTime", "endTime", success, details, "prevHash", hash)
      VALUES (${Bun.randomUUIDv7()}::uuid, 1, 'forged-chain', ${BigInt(T0)}, 'ACCESS_GRANTED', 'mallory', 'token:gmail:ceo', NULL, NULL, true, '{}'::jsonb, 'x', 'y')`;
    const verify = (await (await a.call(a.admin, "GET", "/v1/audit-logs/verify")).json()) as { valid: boolean };
    expect(verify.valid).toBe(false);

    const webhooks = a.t.runtime.webhooks;
    // Down: every attempt fails and is rescheduled with backoff.
    expect(await webhooks.deliverDue()).toBe(6);
    expect(await webhooks.deliverDue()).toBe(0); // nothing due before the backoff passes
    clock.t += 1_000;
    await webhooks.deliverDue();
    const pending = (await (
      await a.call(a.admin, "GET", `/v1/webhooks/${hook.id}/deliveries?status=pending`)
    ).json()) as { items: Array<{ attempts: number; lastError: string; nextAttemptAt: string }> };
    expect(pending.items).toHaveLength(6);
    for (const d of pending.items) {
      expect(d.attempts).toBeGreaterThanOrEqual(1);
      expect(d.lastError).toBe("connection failed");
      expect(Date.parse(d.nextAttemptAt)).toBeGreaterThan(clock.t);
    }

    // Back up on the same port; the next due round delivers everything.
    const receiver = startReceiver(port);
    try {
      for (let i = 0; i < 10 && receiver.received.length < 6; i++) {
        clock.t += 5_000;
        await webhooks.deliverDue();
      }
      expect(receiver.received).toHaveLength(6);
      const bodies = receiver.received.map(
        (r) => JSON.parse(r.body) as { id: string; type: string; createdAt: string; data: Record<string, unknown> },
      );
      expect(bodies.map((b) => b.type).sort()).toEqual([...WEBHOOK_EVENT_TYPES].sort());
      for (const [i, r] of receiver.received.entries()) {
        const b = bodies[i]!;
        expect(Object.keys(b)).toEqual(["id", "type", "createdAt", "data"]);
        expect(r.headers["content-type"]).toBe("application/json");
        expect(r.headers["chronokms-event"]).toBe(b.type);
        expect(r.headers["chronokms-event-id"]).toBe(b.id);
        expect(r.headers["chronokms-delivery"]).toMatch(/^[0-9a-f-]{36}$/);
        const sig = r.headers["chronokms-signature"]!;
        expect(sig).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
        expect(r.headers["chronokms-timestamp"]).toBe(/^t=(\d+)/.exec(sig)![1]);
        expect(verifyWebhookSignature(hook.secret, sig, r.body, Math.floor(clock.t / 1000))).toBe(true);
        // Outside the replay window, or with another secret or body, it does not verify.
        expect(verifyWebhookSignature(hook.secret, sig, r.body, Math.floor(clock.t / 1000) + 301)).toBe(false);
        expect(verifyWebhookSignature(`${hook.secret}x`, sig, r.body, Math.floor(clock.t / 1000))).toBe(false);
        expect(verifyWebhookSignature(hook.secret, sig, r.body.replace("}", " }"), Math.floor(clock.t / 1000))).toBe(
          false,
        );
      }
      const byType = Object.fromEntries(bodies.map((b) => [b.type, b.data]));
      expect(byType["token.deleted"]).toEqual({ integration: "github", userId: "wh-1", revocation: "unsupported" });
      expect(byType["token.degraded"]).toEqual({
        integration: "gmail",
        userId: "wh-2",
        from: "ok",
        to: "degraded",
        reason: "provider_5xx",
        retryAt: expect.stringMatching(/^2026-03-09T10:00:/),
      });
      expect(byType["token.recovered"]).toEqual({ integration: "gmail", userId: "wh-2", from: "degraded", to: "ok" });
      expect(byType["token.needs_reauth"]).toEqual({
        integration: "gmail",
        userId: "wh-3",
        from: "ok",
        to: "needs-reauth",
        reason: "invalid_grant",
        retryAt: null,
      });
      expect(byType["key.rotated"]).toMatchObject({ version: expect.any(Number), previous: expect.any(Number) });
      expect(byType["audit.verify_failed"]).toMatchObject({ checked: expect.any(Number) });

      const everything = receiver.received.map((r) => JSON.stringify(r)).join("\n");
      const secrets = [
        hook.secret,
        hook.secret.slice(6),
        a.admin,
        a.writer,
        a.reader,
        ...fake.issued,
        "AT-SECRET",
        "RT-SECRET",
        "fake-refresh",
        fake.clientSecret,
      ];
      for (const s of secrets) expect({ s, leaked: everything.includes(s) }).toEqual({ s, leaked: false });
      const stored = toJson(await h.db.prisma.webhookDelivery.findMany());
      for (const s of secrets) expect({ s, stored: stored.includes(s) }).toEqual({ s, stored: false });

      // Delivery state for admins: all delivered, the retried ones with more than one attempt.
      const list = (await (await a.call(a.admin, "GET", "/v1/webhooks")).json()) as {
        items: Array<{ id: string; deliveries: { pending: number; delivered: number; failed: number } }>;
      };
      expect(list.items.find((w) => w.id === hook.id)!.deliveries).toMatchObject({
        pending: 0,
        delivered: 6,
        failed: 0,
      });
      const all = (await (await a.call(a.admin, "GET", `/v1/webhooks/${hook.id}/deliveries`)).json()) as {
        items: Array<{ status: string; attempts: number }>;
      };
      expect(all.items.every((d) => d.status === "delivered" && d.attempts >= 2)).toBe(true);
      // Delivered once: another round sends nothing.
      clock.t += 3_600_000;
      expect(await webhooks.deliverDue()).toBe(0);
      expect(receiver.received).toHaveLength(6);
    } finally {
      receiver.stop();
    }
  });

  test("an event is in the outbox exactly when its audit row is: the delivery names the audit row as its event id", async () => {
    const reg = (await (
      await a.call(a.admin, "POST", "/v1/webhooks", { url: "http://127.0.0.1:9/none", events: ["token.deleted"] })
    ).json()) as { id: string };
    expect((await a.call(a.writer, "PUT", "/v1/tokens/github/wh-link", { accessToken: "x" })).status).toBe(201);
    expect((await a.call(a.writer, "DELETE", "/v1/tokens/github/wh-link")).status).toBe(204);
    const row = await h.db.prisma.auditLog.findFirstOrThrow({
      where: { eventType: "TOKEN_DELETED", target: "token:github:wh-link" },
    });
    const deliveries = await h.db.prisma.webhookDelivery.findMany({ where: { webhookId: reg.id } });
    expect(deliveries.map((d) => d.eventId)).toEqual([row.id]);
    // A webhook not subscribed to an event type gets no delivery for it.
    expect(deliveries.every((d) => d.eventType === "token.deleted")).toBe(true);
  });

  test("backoff doubles per attempt with jitter, capped; a delivery gives up after WEBHOOK_MAX_ATTEMPTS", async () => {
    const w = a.t.runtime.webhooks;
    for (let n = 1; n <= 5; n++) {
      const d = w.backoffMs(n);
      expect(d).toBeGreaterThanOrEqual(500 * 2 ** (n - 1));
      expect(d).toBeLessThanOrEqual(1000 * 2 ** (n - 1));
    }
    expect(w.backoffMs(40)).toBeLessThanOrEqual(3_600_000);
    // The endpoint of the previous test (port 9) never answers: after 15 attempts it is "failed".
    for (let i = 0; i < 15; i++) {
      clock.t += 3_600_000;
      await w.deliverDue();
    }
    const dead = await h.db.prisma.webhookDelivery.findMany({ where: { webhook: { url: "http://127.0.0.1:9/none" } } });
    expect(dead.map((d) => [d.status, d.attempts])).toEqual([["failed", 15]]);
    clock.t += 3_600_000;
    expect(await w.deliverDue()).toBe(0);
  });
});
