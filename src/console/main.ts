/**
 * Entry point of the admin console (SPEC §11): sign-in, the shell (header, navigation, status
 * line) and a hash router over the pages. Bundled by `Bun.build` when `/console` is first served.
 */
import type { ChronoKmsClient } from "../client/api.ts";
import { ChronoKmsError } from "../client/errors.ts";
import { h, replace } from "./dom.ts";
import { onUnauthorized, resumeSession, signIn, signOut } from "./session.ts";
import type { Page, PageContext } from "./context.ts";
import { overviewPage } from "./pages/overview.ts";
import { requestersPage } from "./pages/requesters.ts";
import { policiesPage } from "./pages/policies.ts";
import { accessRequestsPage } from "./pages/access-requests.ts";
import { auditPage } from "./pages/audit.ts";
import { tokensPage } from "./pages/tokens.ts";
import { describeError } from "./errors.ts";

const pages: { path: string; title: string; page: Page }[] = [
  { path: "overview", title: "Overview", page: overviewPage },
  { path: "requesters", title: "Requesters & keys", page: requestersPage },
  { path: "policies", title: "Policies", page: policiesPage },
  { path: "access-requests", title: "Access requests", page: accessRequestsPage },
  { path: "audit", title: "Audit log", page: auditPage },
  { path: "tokens", title: "Tokens", page: tokensPage },
];

const app = document.getElementById("app")!;
let client: ChronoKmsClient | null = resumeSession();
let generation = 0;

function showSignIn(message?: string) {
  client = null;
  const input = h("input", {
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "ckms_…",
    required: true,
    "aria-describedby": "signin-error",
  });
  const error = h("p", { class: "form-error", id: "signin-error", role: "alert" }, message ?? "");
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (e: SubmitEvent) => {
        e.preventDefault();
        button.disabled = true;
        replace(error, "Checking…");
        const value = input.value;
        input.value = ""; // the key leaves the DOM at once; it lives only in this tab's memory/sessionStorage
        const result = await signIn(value);
        button.disabled = false;
        if (!result.ok) {
          replace(error, result.message);
          input.focus();
          return;
        }
        client = result.client;
        if (!location.hash) history.replaceState(null, "", "#/overview"); // no hashchange: render once
        render();
      },
    },
    h("h1", null, "chronokms console"),
    h(
      "p",
      { class: "muted" },
      "Sign in with an admin API key. It is kept only in this browser tab and sent only to this service's /v1 API.",
    ),
    h("label", { for: "signin-key" }, "Admin API key"),
    Object.assign(input, { id: "signin-key" }),
    error,
    button,
  );
  replace(app, h("main", { class: "signin-wrap" }, form));
  input.focus();
}

function currentPath(): string {
  const p = location.hash.replace(/^#\/?/, "").split("?")[0] ?? "";
  return pages.some((x) => x.path === p) ? p : "overview";
}

function render() {
  if (!client) return showSignIn();
  const path = currentPath();
  const entry = pages.find((p) => p.path === path)!;
  const gen = ++generation;
  const status = h("div", { class: "status", role: "status", "aria-live": "polite" });
  const root = h("section", { class: "page", data: { page: path } });
  const nav = h(
    "nav",
    { "aria-label": "Sections" },
    pages.map((p) =>
      h(
        "a",
        {
          href: `#/${p.path}`,
          class: p.path === path ? "active" : undefined,
          "aria-current": p.path === path ? "page" : undefined,
        },
        p.title,
      ),
    ),
  );
  const header = h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "#/overview" }, "chronokms"),
    nav,
    h(
      "button",
      {
        type: "button",
        class: "link signout",
        onclick: () => {
          signOut();
          history.replaceState(null, "", location.pathname);
          showSignIn("Signed out.");
        },
      },
      "Sign out",
    ),
  );
  replace(app, header, h("main", null, h("h1", null, entry.title), status, root));
  document.title = `${entry.title} · chronokms console`;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ctx: PageContext = {
    client,
    root,
    isStale: () => gen !== generation,
    notify(message, tone = "ok") {
      replace(status, message);
      status.className = `status status-${tone}`;
      clearTimeout(timer);
      if (tone === "ok") timer = setTimeout(() => replace(status), 6000);
    },
  };
  Promise.resolve(entry.page(ctx)).catch((err) => {
    if (ctx.isStale()) return;
    if (err instanceof ChronoKmsError && err.status === 401) {
      signOut();
      return showSignIn("Your API key is no longer accepted. Sign in again.");
    }
    ctx.notify(describeError(err), "bad");
  });
}

// Any API call answering 401 while signed in (the key was revoked, disabled or expired) ends the
// session; during sign-in itself the form reports the failure instead.
onUnauthorized(() => {
  if (!client) return;
  signOut();
  showSignIn("Your API key is no longer accepted. Sign in again.");
});
window.addEventListener("hashchange", render);
render();
