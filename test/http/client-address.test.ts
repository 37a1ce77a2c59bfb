/**
 * TRUST_PROXY is the number of trusted proxy hops: the client address is the X-Forwarded-For
 * entry that many places from the right. From the attacker's side: a client behind one proxy
 * that writes whatever it likes at the left of X-Forwarded-For to dodge the auth-failure limit
 * and to put chosen addresses into audit rows.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeEachDb } from "../support/databases.ts";
import { accessHarness, type AccessHarness } from "../access/support.ts";
import { generateApiKey } from "../../src/access/api-key-format.ts";
import { clientAddress } from "../../src/http/middleware/request-context.ts";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";

test("the entry N places from the right; the peer without a header, with hops 0, or with fewer entries than hops", () => {
  expect(clientAddress("6.6.6.6, 203.0.113.7", "10.0.0.1", 1)).toBe("203.0.113.7");
  expect(clientAddress("6.6.6.6, 203.0.113.7, 10.1.1.1", "10.0.0.1", 2)).toBe("203.0.113.7");
  expect(clientAddress("203.0.113.7", "10.0.0.1", 0)).toBe("10.0.0.1");
  expect(clientAddress(undefined, "10.0.0.1", 1)).toBe("10.0.0.1");
  expect(clientAddress("203.0.113.7", "10.0.0.1", 2)).toBe("10.0.0.1");
  expect(clientAddress("x, [2001:DB8::1]:443", "10.0.0.1", 1)).toBe("2001:db8::1");
  expect(clientAddress("x, 198.51.100.4:5678", "10.0.0.1", 1)).toBe("198.51.100.4");
  for (const garbage of ["not-an-ip", "", "1.2.3", "999.1.1.1", "<script>", "1.2.3.4 5.6.7.8"]) {
    expect(() => clientAddress(`1.1.1.1, ${garbage}`, "10.0.0.1", 1)).toThrow(/X-Forwarded-For/);
  }
});

test("config: a hop count; v1's TRUST_PROXY=true is refused with a message saying what to set", () => {
  expect(loadConfig({}).trustProxy).toBe(0);
  expect(loadConfig({ TRUST_PROXY: "2" }).trustProxy).toBe(2);
  expect(loadConfig({ TRUST_PROXY: "false" }).trustProxy).toBe(0);
  expect(() => loadConfig({ TRUST_PROXY: "true" })).toThrow(ConfigError);
  expect(() => loadConfig({ TRUST_PROXY: "true" })).toThrow(/^TRUST_PROXY: .*TRUST_PROXY=1/);
  expect(() => loadConfig({ TRUST_PROXY: "-1" })).toThrow(/^TRUST_PROXY: /);
});

describeEachDb("TRUST_PROXY=1 over HTTP", (h) => {
  let x: AccessHarness;
  beforeAll(async () => {
    x = await accessHarness(h.db, { env: { AUTH_FAILURES_PER_MINUTE: "3", TRUST_PROXY: "1" } });
  });
  afterAll(async () => x?.close());

  const guess = (xff: string) =>
    x.app.request("/v1/policies", {
      headers: { "x-forwarded-for": xff, authorization: `Bearer ${generateApiKey().apiKey}` },
    });

  test("rotating the client-written leftmost entry neither escapes the limit nor reaches the audit rows", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await guess(`198.18.0.${i}, 203.0.113.50`)).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429, 429]);
    const rows = await h.db.prisma.auditLog.findMany({ where: { eventType: "AUTH_FAILED" } });
    const addresses = rows.map((r) => (r.details as { address: string }).address);
    expect(addresses.length).toBeGreaterThanOrEqual(3);
    expect(new Set(addresses)).toEqual(new Set(["203.0.113.50"]));
  });

  test("a garbage entry where the proxy's should be is a 400 in the error shape, and no audit row", async () => {
    const before = await h.db.prisma.auditLog.count();
    const res = await guess("203.0.113.9, definitely-not-an-address");
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "VALIDATION_FAILED" } });
    expect(await h.db.prisma.auditLog.count()).toBe(before);
  });
});
