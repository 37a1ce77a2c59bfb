/**
 * Audit log: rows with filters and cursor paging, and verification whose first finding is
 * highlighted — in the result and, when the row is on the page (or found by paging on), in the table.
 */
import type { AuditLogEntry } from "../../client/types.ts";
import { AUDIT_EVENT_TYPES } from "../../audit/types.ts";
import type { Page } from "../context.ts";
import { badge, field, fmtDetails, fmtJson, fmtTime, h, isoFromLocal, replace } from "../dom.ts";
import { pagedList } from "../list-view.ts";
import { findingsOf, verifyButton, short, verificationPanel, type Finding } from "../verification.ts";

export const auditPage: Page = async (ctx) => {
  const { client, root } = ctx;
  const verifySlot = h("div", { class: "verify-slot" });
  const eventType = h(
    "select",
    null,
    h("option", { value: "" }, "any event"),
    AUDIT_EVENT_TYPES.map((t) => h("option", { value: t }, t)),
  );
  const actor = h("input", { type: "text", autocomplete: "off" });
  const from = h("input", { type: "datetime-local" });
  const to = h("input", { type: "datetime-local" });
  let firstFinding: Finding | null = null;

  const view = pagedList(ctx, {
    fields: [
      field("Event", eventType, { name: "eventType" }),
      field("Actor", actor, { name: "actor" }),
      field("From", from, { name: "from" }),
      field("To (exclusive)", to, { name: "to" }),
    ],
    query: (cursor) =>
      client.auditLogs({
        eventType: eventType.value || undefined,
        actor: actor.value.trim() || undefined,
        from: isoFromLocal(from.value),
        to: isoFromLocal(to.value),
        limit: 50,
        cursor,
      }),
    headers: ["Time", "Chain · seq", "Event", "Actor", "Target", "Result", "Details", "Hash"],
    row,
    empty: "No audit rows match.",
  });
  const { pager, load } = view;

  function row(e: AuditLogEntry): HTMLTableRowElement {
    const flagged =
      firstFinding !== null &&
      (firstFinding.id === e.id ||
        (firstFinding.id === undefined && firstFinding.chainId === e.chainId && firstFinding.seq === e.seq));
    return h(
      "tr",
      { class: flagged ? "first-finding" : undefined, data: { id: e.id, eventType: e.eventType } },
      h("td", { class: "time" }, fmtTime(e.timestamp)),
      h("td", { class: "mono small", title: e.chainId }, `${short(e.chainId)} · ${e.seq}`),
      h("td", null, e.eventType),
      h("td", { class: "mono small" }, e.actor),
      h("td", { class: "mono small" }, e.target ?? "—"),
      h(
        "td",
        null,
        e.success ? badge("ok", "ok") : badge(e.eventType === "ACCESS_DENIED" ? "denied" : "failed", "bad"),
      ),
      h("td", { class: "small details", title: fmtJson(e.details, 2000) }, fmtDetails(e.details)),
      h("td", { class: "mono small", title: e.hash }, e.hash.slice(0, 10)),
    );
  }

  /** Pages on from the first page (no filters) until the finding's row is shown, at most 20 pages. */
  async function findRow() {
    eventType.value = "";
    actor.value = "";
    from.value = "";
    to.value = "";
    pager.reset();
    let next = await load();
    for (let i = 0; i < 20 && !rowShown() && next; i++) {
      pager.advance(next);
      next = await load();
    }
    const el = view.list.querySelector("tr.first-finding");
    if (el) el.scrollIntoView({ block: "center" });
    else
      ctx.notify(
        "The flagged row is not within the first 20 pages (it may be missing: a deletion is reported at the row after it).",
        "bad",
      );
  }
  const rowShown = () =>
    firstFinding !== null &&
    view
      .items()
      .some((e) => e.id === firstFinding!.id || (e.chainId === firstFinding!.chainId && e.seq === firstFinding!.seq));

  const verify = verifyButton(
    () => client.verifyAudit(),
    verifySlot,
    async (v) => {
      firstFinding = findingsOf(v)[0] ?? null;
      replace(
        verifySlot,
        verificationPanel(v, new Date()),
        firstFinding && (firstFinding.id || firstFinding.chainId)
          ? h("button", { type: "button", onclick: () => void findRow() }, "Show the first finding in the log")
          : null,
      );
      await load(); // re-render rows so the flagged one is highlighted if it is on this page
    },
    true,
  );

  replace(
    root,
    h(
      "section",
      { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", null, "Verification"), verify),
      verifySlot,
    ),
    h("section", { class: "panel" }, view.filters, view.list),
  );
  await load();
};
