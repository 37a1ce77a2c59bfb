/**
 * Overview: key versions with their status and the records each still protects, rotation state
 * (and the schedule when the server has one), decisions per minute from the audit statistics,
 * the last verification this tab ran and the signed audit head (anchors) when the server serves it.
 */
import type { KeyVersion } from "../../client/types.ts";
import { ChronoKmsError } from "../../client/errors.ts";
import type { Page, PageContext } from "../context.ts";
import { badge, fmtJson, fmtNumber, fmtTime, h, replace, table } from "../dom.ts";
import { confirmAction } from "../confirm.ts";
import { describeError } from "../errors.ts";
import { lastVerification, verificationPanel, verifyButton } from "../verification.ts";

/** A GET of a route newer servers add: null when this server does not serve it (404). */
type Optional =
  | { kind: "absent" }
  | { kind: "error"; message: string }
  | { kind: "ok"; value: Record<string, unknown> };
async function optional(load: () => Promise<Record<string, unknown>>): Promise<Optional> {
  try {
    return { kind: "ok", value: await load() };
  } catch (err) {
    if (err instanceof ChronoKmsError && err.status === 404) return { kind: "absent" };
    return { kind: "error", message: describeError(err) };
  }
}

const DECISIONS = ["ACCESS_GRANTED", "ACCESS_DENIED"] as const;

export const overviewPage: Page = async (ctx) => {
  const { client, root } = ctx;
  replace(root, h("p", { class: "muted" }, "Loading…"));
  const now = Date.now();
  const [keys, minute, hour, total, head, schedule] = await Promise.all([
    client.keys(),
    client.auditStats({ from: now - 60_000 }),
    client.auditStats({ from: now - 3_600_000 }),
    client.auditStats(),
    optional(() => client.request("GET", "/v1/audit-logs/head")),
    optional(() => client.request("GET", "/v1/keys/schedule")),
  ]);
  if (ctx.isStale()) return;
  const decisions = (s: typeof minute) => DECISIONS.reduce((n, t) => n + (s.byEventType[t] ?? 0), 0);
  const versions = keys.versions;
  const active = versions.find((v) => v.status === "active");
  const pending = versions.filter((v) => v.status !== "active").reduce((n, v) => n + v.records, 0);

  const verifySlot = h("div", { class: "verify-slot" });
  const showVerification = () =>
    replace(
      verifySlot,
      lastVerification
        ? verificationPanel(lastVerification.result, lastVerification.at)
        : h("p", { class: "muted" }, "Not verified in this session yet."),
    );
  showVerification();
  const verify = verifyButton(() => client.verifyAudit(), verifySlot, showVerification);

  replace(
    root,
    h(
      "div",
      { class: "cards" },
      card(
        "Active key",
        active ? `v${active.version}` : "none",
        active
          ? `${active.sliceSeconds} s slices · since ${fmtTime(active.rotatedAt ?? active.createdAt)}`
          : "no active master key",
        "active-key",
      ),
      card(
        "Rotation",
        pending === 0 ? "Complete" : `${fmtNumber(pending)} pending`,
        pending === 0
          ? "every record is sealed under the active version"
          : "records still sealed under older versions (re-encryption runs in the background)",
        "rotation",
      ),
      card(
        "Decisions / minute",
        fmtNumber(decisions(minute)),
        `in the last minute · ${fmtNumber(decisions(hour))} in the last hour`,
        "decisions",
      ),
      card(
        "Audit log",
        fmtNumber(total.total),
        `rows · ${plural(total.chains, "chain")} · ${plural(total.bySuccess.failure, "failure")} recorded`,
        "audit",
      ),
    ),
    h(
      "section",
      { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", null, "Master key versions"), rotateControl(ctx)),
      versionTable(versions),
    ),
    h("section", { class: "panel" }, h("h2", null, "Rotation schedule"), scheduleView(schedule)),
    h(
      "section",
      { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", null, "Audit verification"), verify),
      verifySlot,
      headView(head),
    ),
  );
};

const plural = (n: number, word: string) => `${fmtNumber(n)} ${word}${n === 1 ? "" : "s"}`;

function card(title: string, value: string, note: string, name: string): HTMLElement {
  return h(
    "div",
    { class: "card", data: { card: name } },
    h("div", { class: "card-title" }, title),
    h("div", { class: "card-value" }, value),
    h("div", { class: "card-note" }, note),
  );
}

function statusBadge(status: KeyVersion["status"]) {
  return badge(status, status === "active" ? "ok" : status === "retired" ? "muted" : "warn");
}

function versionTable(versions: KeyVersion[]): HTMLElement {
  const rows = [...versions]
    .sort((a, b) => b.version - a.version)
    .map((v) =>
      h(
        "tr",
        { data: { version: String(v.version) } },
        h("td", null, `v${v.version}`),
        h("td", null, statusBadge(v.status)),
        h("td", { class: "num" }, fmtNumber(v.records)),
        h(
          "td",
          { class: "mono small" },
          Object.entries(v.recordsByStore)
            .map(([k, n]) => `${k}: ${n}`)
            .join(", ") || "—",
        ),
        h("td", { class: "num" }, `${v.sliceSeconds} s`),
        h("td", null, fmtTime(v.createdAt)),
        h("td", null, fmtTime(v.rotatedAt)),
        h("td", null, fmtTime(v.retiredAt)),
        h("td", { class: "mono small", title: v.kekId }, v.kekId.slice(0, 12)),
      ),
    );
  return table(["Version", "Status", "Records", "By store", "Slice", "Created", "Rotated", "Retired", "KEK"], rows);
}

function rotateControl(ctx: PageContext): HTMLElement {
  return confirmAction(ctx, {
    tag: "div",
    label: "Rotate master key…",
    confirmLabel: "Rotate now",
    prompt: "New version becomes active; older ones decrypt only. ",
    run: async () => {
      const r = await ctx.client.rotateKeys();
      ctx.notify(
        `Rotated: v${r.version} is active${r.previous ? `, v${r.previous} is decrypt-only` : ""}; ${r.pending} records to re-encrypt.`,
      );
      await overviewPage(ctx);
    },
  });
}

function scheduleView(o: Optional): HTMLElement {
  if (o.kind === "absent")
    return h(
      "p",
      { class: "muted" },
      "This server has no rotation schedule: rotate here or with `bun run keys:rotate`.",
    );
  if (o.kind === "error") return h("p", { class: "form-error" }, o.message);
  const s = o.value;
  const enabled = s.enabled === true;
  return h(
    "dl",
    { class: "facts" },
    h("dt", null, "Scheduled rotation"),
    h("dd", null, enabled ? badge("enabled", "ok") : badge("disabled", "muted")),
    ...Object.entries(s)
      .filter(([k]) => k !== "enabled")
      .flatMap(([k, v]) => [
        h("dt", null, k),
        h(
          "dd",
          null,
          /At$/.test(k) && typeof v === "string" ? fmtTime(v) : typeof v === "object" ? fmtJson(v, 300) : String(v),
        ),
      ]),
  );
}

function headView(o: Optional): HTMLElement | null {
  if (o.kind === "absent") return null;
  if (o.kind === "error") return h("p", { class: "form-error" }, `Audit head: ${o.message}`);
  const head = o.value;
  return h(
    "div",
    { class: "head" },
    h("h3", null, "Signed audit head and anchors"),
    h(
      "dl",
      { class: "facts" },
      Object.entries(head).flatMap(([k, v]) => [
        h("dt", null, k),
        h("dd", { class: "mono small" }, typeof v === "object" ? fmtJson(v, 400) : String(v)),
      ]),
    ),
  );
}
