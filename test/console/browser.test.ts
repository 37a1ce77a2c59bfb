/**
 * The console in a real browser: Debian's Chromium driven by playwright-core, against the real app
 * on a real port, once per database. One administrator's session, step by step: sign in (and a
 * wrong key first), requesters and keys, an XSS attempt, policies and simulation, access requests
 * with paging, the audit log and its verification, rotation, tokens, a phone-width layout, and
 * finally an attacker with SQL access who edits an audit row — the console must point at it.
 * CI sets CHRONOKMS_REQUIRE_BROWSER=1, so there this cannot silently skip.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Dialog, Page } from "playwright-core";
import { describeEachDb } from "../support/databases.ts";
import { startTestApp, TEST_ADMIN_KEY, type TestApp } from "../support/app.ts";
import { asSuperuser } from "../audit/helpers.ts";
import { ChronoKmsClient } from "../../src/client/api.ts";
import { POLICY_TYPES } from "../../src/policy/index.ts";
import { chromiumPath, launchChromium, requireBrowserIfAsked, type Browser } from "../../scripts/lib/chromium.ts";

requireBrowserIfAsked();

const XSS_NAME = "<img src=x onerror=alert(1)>";
const API_KEY_IN_TEXT = /ckms_[a-z2-7]{16}_[A-Za-z0-9_-]{43}/;

if (chromiumPath) {
  describeEachDb("console in headless Chromium", (h) => {
    let t: TestApp;
    let browser: Browser;
    let page: Page;
    const dialogs: string[] = [];
    const cspViolations: string[] = [];
    const pageErrors: string[] = [];
    const requested = new Set<string>();
    let issuedKey = "";
    let sessionKey = { requesterUuid: "", keyId: "" };

    beforeAll(async () => {
      t = await startTestApp(h.db, { listen: true });
      browser = await launchChromium();
      page = await browser.context.newPage();
      page.on("dialog", (d: Dialog) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      page.on("console", (m) => {
        if (/Content Security Policy|Trusted Type/i.test(m.text())) cspViolations.push(m.text());
      });
      page.on("pageerror", (e) => pageErrors.push(e.message));
      page.on("request", (r) => requested.add(`${r.method()} ${new URL(r.url()).pathname}`));
    }, 90_000);
    afterAll(async () => {
      await browser?.close();
      await t?.close();
    });

    const admin = () => new ChronoKmsClient({ baseUrl: t.url, apiKey: TEST_ADMIN_KEY });
    const go = async (section: string) => {
      await page.click(`nav a[href="#/${section}"]`);
      await page.waitForSelector(`section.page[data-page="${section}"]`);
    };

    test("a wrong key shows a clear sign-in error and does not sign in", async () => {
      const res = await page.goto(`${t.url}/console`);
      expect(res?.headers()["content-security-policy"]).toContain("frame-ancestors 'none'");
      expect(res?.headers()["x-frame-options"]).toBe("DENY");
      await page.fill("#signin-key", "ckms_aaaaaaaaaaaaaaaa_wrongwrongwrongwrongwrongwrongwrongwrongwro");
      await page.click("form.signin button[type=submit]");
      await page.waitForFunction(() => /not accepted/.test(document.getElementById("signin-error")?.textContent ?? ""));
      expect(await page.textContent("#signin-error")).toBe(
        "Sign-in failed: the API key was not accepted (unknown, revoked, disabled or expired).",
      );
      expect(await page.locator("nav").count()).toBe(0);
      await page.fill("#signin-key", "not a key");
      await page.click("form.signin button[type=submit]");
      await page.waitForFunction(() =>
        /not an API key/.test(document.getElementById("signin-error")?.textContent ?? ""),
      );
    }, 60_000);

    test("signs in with the admin key, which never stays in the DOM, and shows the overview", async () => {
      await page.fill("#signin-key", TEST_ADMIN_KEY);
      await page.click("form.signin button[type=submit]");
      await page.waitForSelector('[data-card="active-key"]');
      expect(await page.textContent('[data-card="active-key"] .card-value')).toBe("v1");
      expect(await page.locator('tr[data-version="1"]').textContent()).toContain("active");
      expect(await page.content()).not.toContain(TEST_ADMIN_KEY);
      // Only this tab remembers it: sessionStorage, never localStorage or a cookie.
      expect(await page.evaluate(() => [sessionStorage.length, localStorage.length, document.cookie])).toEqual([
        1,
        0,
        "",
      ]);
      expect(await browser.context.cookies()).toEqual([]);
    }, 60_000);

    test("creates a requester, shows the API's message next to a bad field, and renders a hostile name as text", async () => {
      await go("requesters");
      const form = page.locator('form[data-form="new-requester"]');
      await form.getByLabel("Requester id").fill("bad id with spaces");
      await form.getByLabel("Name", { exact: true }).fill("Someone");
      await form.getByRole("button", { name: "Create requester" }).click();
      const idError = form.locator('[data-field="requesterId"] .field-error');
      await idError.waitFor();
      expect(await idError.textContent()).toContain("requesterId must be 1–128 characters");

      await form.getByLabel("Requester id").fill("alice-svc");
      await form.getByLabel("Name", { exact: true }).fill("Alice service");
      await form.getByLabel("Department (optional)").fill("finance");
      await form.getByRole("button", { name: "Create requester" }).click();
      await page.waitForSelector('section.detail[data-requester="alice-svc"]');

      await form.getByLabel("Requester id").fill("xss-probe");
      await form.getByLabel("Name", { exact: true }).fill(XSS_NAME);
      await form.getByRole("button", { name: "Create requester" }).click();
      await page.waitForSelector('section.detail[data-requester="xss-probe"]');
      expect(await page.locator('tr[data-requester-id="xss-probe"] td.name').textContent()).toBe(XSS_NAME);
      expect(await page.locator("section.detail dd.name").textContent()).toBe(XSS_NAME);
      expect(await page.locator('img[src="x"]').count()).toBe(0);
      await Bun.sleep(300);
      expect(dialogs).toEqual([]);
    }, 60_000);

    test("issues an API key shown once with a copy button, then removes it from the page; revokes a key", async () => {
      await page.locator('tr[data-requester-id="alice-svc"] button.manage').click();
      await page.waitForSelector('section.detail[data-requester="alice-svc"]');
      const issue = page.locator('form[data-form="issue-key"]');
      await issue.getByLabel("Key name (optional)").fill("alice-reader");
      await issue.getByRole("button", { name: "Issue key" }).click();
      const secret = page.locator(".secret-box code.secret");
      await secret.waitFor();
      issuedKey = (await secret.textContent()) ?? "";
      expect(issuedKey).toMatch(API_KEY_IN_TEXT);
      expect(await page.locator(".secret-box button", { hasText: "Copy" }).count()).toBe(1);
      await page.locator(".secret-box button", { hasText: "Copy" }).click();
      // The key works: a reader call with it succeeds.
      await new ChronoKmsClient({ baseUrl: t.url, apiKey: issuedKey }).listTokens();
      await page.locator(".secret-box button", { hasText: "Done" }).click();
      expect(await page.locator(".secret-box").count()).toBe(0);
      expect(await page.content()).not.toContain(issuedKey);
      expect((await page.content()).match(API_KEY_IN_TEXT)).toBeNull();
      const keyId = issuedKey.split("_")[1]!;
      await page.waitForSelector(`tr[data-key-id="${keyId}"]`);

      // A second key, revoked from the table.
      await issue.getByRole("button", { name: "Issue key" }).click();
      await secret.waitFor();
      const doomed = ((await secret.textContent()) ?? "").split("_")[1]!;
      await page.locator(".secret-box button", { hasText: "Done" }).click();
      const row = page.locator(`tr[data-key-id="${doomed}"]`);
      await row.getByRole("button", { name: "Revoke…" }).click();
      await row.getByRole("button", { name: "Revoke now" }).click();
      await page.waitForSelector(`tr[data-key-id="${doomed}"] >> text=revoked`);
      expect(await page.locator(`tr[data-key-id="${doomed}"] button`).count()).toBe(0);
      const alice = (await admin().listRequesters({ requesterId: "alice-svc" })).items[0]!;
      const keys = (await admin().getRequester(alice.id)).apiKeys ?? [];
      expect(keys.map((k) => [k.keyId, k.enabled]).sort()).toEqual(
        [
          [keyId, true],
          [doomed, false],
        ].sort(),
      );
    }, 60_000);

    test("disables and re-enables a requester", async () => {
      const detail = page.locator('section.detail[data-requester="alice-svc"]');
      await detail.getByRole("button", { name: "Disable requester" }).click();
      await page.waitForSelector('section.detail[data-requester="alice-svc"] >> text=Enable requester');
      const alice = (await admin().listRequesters({ requesterId: "alice-svc" })).items[0]!;
      expect(alice.enabled).toBe(false);
      await page
        .locator('section.detail[data-requester="alice-svc"]')
        .getByRole("button", { name: "Enable requester" })
        .click();
      await page.waitForSelector('section.detail[data-requester="alice-svc"] >> text=Disable requester');
      expect((await admin().getRequester(alice.id)).enabled).toBe(true);
    }, 60_000);

    test("creates a whitelist (a bad config first: the API's message sits under the config field) and simulates granted and denied", async () => {
      await go("policies");
      const form = page.locator('form[data-form="policy"]');
      await form.getByLabel("Name", { exact: true }).fill("alice may read");
      await form.getByLabel("Config (JSON)").fill('{ "requesters": [] }');
      await form.getByRole("button", { name: "Create policy" }).click();
      const configError = form.locator('[data-field="config"] .field-error');
      await configError.waitFor();
      expect(await configError.textContent()).toBe("a whitelist must name at least one requester or department");
      await form.getByLabel("Config (JSON)").fill('{ "requesters": ["alice-svc"] }');
      await form.getByRole("button", { name: "Create policy" }).click();
      await page.waitForSelector('tr[data-policy-name="alice may read"]');
      expect(await page.locator('tr[data-policy-name="alice may read"]').textContent()).toContain("enabled");

      const sim = page.locator('form[data-form="simulate"]');
      await sim.getByLabel("Requester id").fill("alice-svc");
      await sim.getByRole("button", { name: "Simulate" }).click();
      await page.waitForSelector('.simulation[data-granted="true"]');
      expect(await page.locator(".simulation .verdict").textContent()).toContain("GRANTED");
      expect(await page.locator(".simulation tr.deciding").textContent()).toContain("alice may read");

      await sim.getByLabel("Requester id").fill("mallory");
      await sim.getByRole("button", { name: "Simulate" }).click();
      await page.waitForSelector('.simulation[data-granted="false"]');
      expect(await page.locator(".simulation .verdict").textContent()).toContain("DENIED");
      expect(await page.locator(".simulation").textContent()).toContain("not-admitted");
    }, 60_000);

    test("edits a policy and disables it", async () => {
      const row = page.locator('tr[data-policy-name="alice may read"]');
      await row.getByRole("button", { name: "Edit" }).click();
      const form = page.locator('form[data-form="policy"]');
      await form.getByLabel("Priority").fill("7");
      await form.getByRole("button", { name: "Save changes" }).click();
      await page.waitForFunction(() =>
        document.querySelector('tr[data-policy-name="alice may read"]')?.textContent?.includes("v2"),
      );
      expect(await row.locator("td").first().textContent()).toBe("7");
      await row.getByRole("button", { name: "Disable" }).click();
      await page.waitForFunction(() =>
        document.querySelector('tr[data-policy-name="alice may read"]')?.textContent?.includes("disabled"),
      );
      await page.locator('tr[data-policy-name="alice may read"]').getByRole("button", { name: "Enable" }).click();
      await page.waitForFunction(() => document.querySelector('tr[data-policy-name="alice may read"] .badge-ok'));
    }, 60_000);

    test("offers every registered policy type with its example config; a new type works end to end, then is deleted", async () => {
      const form = page.locator('form[data-form="policy"]');
      const options = await form
        .locator('[data-field="type"] option')
        .evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
      expect(options).toEqual([...POLICY_TYPES]);
      await form.getByLabel("Type").selectOption("purpose-denylist");
      expect(JSON.parse(await form.getByLabel("Config (JSON)").inputValue())).toEqual({ denied: ["marketing"] });
      await form.getByLabel("Name", { exact: true }).fill("no marketing");
      await form.getByRole("button", { name: "Create policy" }).click();
      const row = page.locator('tr[data-policy-name="no marketing"]');
      await row.waitFor();

      const sim = page.locator('form[data-form="simulate"]');
      await sim.getByLabel("Requester id").fill("alice-svc");
      await sim.getByLabel("Purpose (optional)").fill("Marketing");
      await sim.getByRole("button", { name: "Simulate" }).click();
      await page.waitForSelector('.simulation[data-granted="false"]');
      expect(await page.locator(".simulation .verdict").textContent()).toContain("PURPOSE_NOT_ALLOWED");
      await sim.getByLabel("Purpose (optional)").fill("");

      await row.getByRole("button", { name: "Delete…" }).click();
      await row.getByRole("button", { name: "Delete now" }).click();
      await page.waitForFunction(() => document.querySelector('tr[data-policy-name="no marketing"]') === null);
    }, 60_000);

    test("lists access requests with filters and cursor paging", async () => {
      const reader = new ChronoKmsClient({ baseUrl: t.url, apiKey: issuedKey, retries: 1 });
      const now = Date.now();
      for (let i = 0; i < 55; i++)
        await reader.requestAccess({
          resource: { type: "timeslice" },
          timeRange: { start: now - 7_200_000, end: now - 3_600_000 },
        });
      await admin().createRequester({ requesterId: "bob-svc", name: "Bob" });
      await go("access-requests");
      await page.waitForSelector("tr[data-id]");
      expect(await page.locator("tr[data-id]").count()).toBe(50);
      await page.click("button.next-page");
      await page.waitForFunction(() => document.querySelectorAll("tr[data-id]").length === 5);
      await page.click("text=← Previous");
      await page.waitForFunction(() => document.querySelectorAll("tr[data-id]").length === 50);
      const filters = page.locator('form[data-form="filters"]');
      await filters.getByLabel("Decision").selectOption("false");
      await filters.getByRole("button", { name: "Apply" }).click();
      await page.waitForFunction(() => document.querySelector("td.empty") !== null);
      await filters.getByLabel("Decision").selectOption("true");
      await filters.getByLabel("Requester id").fill("alice-svc");
      await filters.getByRole("button", { name: "Apply" }).click();
      await page.waitForFunction(
        () =>
          document.querySelectorAll("tr[data-id]").length === 50 &&
          document.querySelectorAll(".badge-bad").length === 0,
      );
    }, 90_000);

    test("browses the audit log with a filter and verifies it", async () => {
      await go("audit");
      await page.waitForSelector("tr[data-event-type]");
      const filters = page.locator('form[data-form="filters"]');
      await filters.getByLabel("Event").selectOption("REQUESTER_CREATED");
      await filters.getByRole("button", { name: "Apply" }).click();
      await page.waitForFunction(() => {
        const rows = Array.from(document.querySelectorAll("tr[data-event-type]"));
        return rows.length >= 3 && rows.every((r) => (r as HTMLElement).dataset.eventType === "REQUESTER_CREATED");
      });
      await page.click("text=Verify audit log");
      await page.waitForSelector('.verification[data-valid="true"]');
      expect(await page.locator(".verification .verdict").textContent()).toContain("intact");
    }, 60_000);

    test("rotates the master key and the overview shows the new version", async () => {
      await go("overview");
      await page.waitForSelector('[data-card="active-key"]');
      expect(await page.textContent('[data-card="active-key"] .card-value')).toBe("v1");
      await page.click("text=Rotate master key…");
      await page.click("text=Rotate now");
      await page.waitForFunction(
        () => document.querySelector('[data-card="active-key"] .card-value')?.textContent === "v2",
      );
      expect(await page.locator('tr[data-version="2"]').textContent()).toContain("active");
      expect(await page.locator('tr[data-version="1"]').textContent()).toContain("decrypt-only");
      expect(await page.textContent(".status")).toContain("v2 is active");
    }, 60_000);

    test("tokens: metadata only, and a clear message for a key without the reader role", async () => {
      await go("tokens");
      await page.waitForSelector(".notice");
      expect(await page.textContent(".notice")).toContain("reader role");
      // An admin+reader key (issued through the console API) sees the inventory, never a value.
      const writerReq = await admin().createRequester({ requesterId: "callback", name: "OAuth callback" });
      const writer = new ChronoKmsClient({
        baseUrl: t.url,
        apiKey: (await admin().createApiKey(writerReq.id, { roles: ["writer"] })).apiKey,
      });
      await writer.putToken("gmail", "user-1", {
        accessToken: "ya29.secret-access-value",
        refreshToken: "1//secret-refresh-value",
        scope: "mail.read",
      });
      // Listing is a decision (SPEC v2 §8): the inventory shows what that key's policies admit.
      await admin().createPolicy({
        name: "callback may list",
        type: "whitelist",
        config: { requesters: ["callback"] },
      });
      const created = await admin().createApiKey(writerReq.id, { roles: ["admin", "reader"] });
      const both = created.apiKey;
      sessionKey = { requesterUuid: writerReq.id, keyId: created.keyId };
      await page.click("button.signout");
      await page.fill("#signin-key", both);
      await page.click("form.signin button[type=submit]");
      await page.waitForSelector("nav");
      await go("tokens");
      await page.waitForSelector("text=user-1");
      const html = await page.content();
      expect(html).toContain("gmail");
      expect(html).not.toContain("secret-access-value");
      expect(html).not.toContain("secret-refresh-value");
      expect(html).not.toContain(both);
    }, 60_000);

    test("is usable at phone width: no page-level horizontal scroll, navigation reachable", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      for (const section of ["overview", "requesters", "policies", "access-requests", "audit", "tokens"]) {
        await go(section);
        await page.waitForSelector(section === "overview" ? "[data-card]" : "table");
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect({ section, overflow: overflow <= 0 }).toEqual({ section, overflow: true });
      }
      expect(await page.locator('nav a[href="#/tokens"]').isVisible()).toBe(true);
      await page.setViewportSize({ width: 1280, height: 800 });
    }, 60_000);

    test("a key revoked during the session sends the console back to sign-in", async () => {
      await admin().revokeApiKey(sessionKey.requesterUuid, sessionKey.keyId);
      await page.click('nav a[href="#/requesters"]');
      await page.waitForFunction(() =>
        /no longer accepted/.test(document.getElementById("signin-error")?.textContent ?? ""),
      );
      expect(await page.locator("nav").count()).toBe(0);
      expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
      await page.fill("#signin-key", TEST_ADMIN_KEY);
      await page.click("form.signin button[type=submit]");
      await page.waitForSelector("nav");
    }, 60_000);

    test("an attacker with SQL access edits an audit row: verify fails and the first finding is highlighted in the log", async () => {
      const victim = (await admin().auditLogs({ eventType: "REQUESTER_CREATED", actor: "bootstrap-admin", limit: 1 }))
        .items[0]!;
      await asSuperuser(h.db, `UPDATE "audit_logs" SET "actor" = 'mallory' WHERE "id" = $1`, [victim.id]);
      await go("audit");
      await page.waitForSelector("tr[data-event-type]");
      await page.click("text=Verify audit log");
      await page.waitForSelector('.verification[data-valid="false"]');
      const first = page.locator(".findings li.first-finding");
      expect(await first.count()).toBe(1);
      expect(await first.textContent()).toContain(victim.id);
      await page.click("text=Show the first finding in the log");
      await page.waitForSelector(`tr.first-finding[data-id="${victim.id}"]`);
      expect(await page.locator("tr.first-finding").count()).toBe(1);
    }, 90_000);

    test("nothing tripped the CSP, no script error, no dialog; every request went to /console or the public /v1 API", () => {
      expect(cspViolations).toEqual([]);
      const paths = [...requested];
      expect(paths.some((p) => p.includes(" /v1/"))).toBe(true);
      expect(paths.filter((p) => !/^[A-Z]+ \/(console(\/assets\/[a-z.]+)?|v1\/.+)$/.test(p))).toEqual([]);
      expect(pageErrors).toEqual([]);
      expect(dialogs).toEqual([]);
    });
  });
} else {
  test.skip("console in headless Chromium (Chromium not installed)", () => {});
}
