/** Access requests: every decision (grant or denial) with filters and cursor paging. */
import type { AccessRequestRecord } from "../../client/types.ts";
import type { Page } from "../context.ts";
import { badge, fmtJson, fmtTime, h, isoFromLocal, replace, table, field } from "../dom.ts";
import { clearErrors, showErrors } from "../errors.ts";
import { CursorPager } from "../paging.ts";

function resourceText(r: AccessRequestRecord): string {
  const res = r.resource as { type?: string; integration?: string; userId?: string } | null;
  if (res?.type === "token") return `token ${res.integration ?? "?"}/${res.userId ?? "?"}`;
  return res?.type ?? r.resourceType;
}

export const accessRequestsPage: Page = async (ctx) => {
  const { client, root } = ctx;
  const pager = new CursorPager();
  const listSlot = h("div");
  const requesterId = h("input", { type: "text", autocomplete: "off" });
  const granted = h(
    "select",
    null,
    h("option", { value: "" }, "any"),
    h("option", { value: "true" }, "granted"),
    h("option", { value: "false" }, "denied"),
  );
  const resourceType = h(
    "select",
    null,
    h("option", { value: "" }, "any"),
    h("option", { value: "timeslice" }, "time slices"),
    h("option", { value: "token" }, "tokens"),
  );
  const from = h("input", { type: "datetime-local" });
  const to = h("input", { type: "datetime-local" });

  async function load() {
    clearErrors(filters);
    try {
      const page = await client.listAccessRequests({
        requesterId: requesterId.value.trim() || undefined,
        granted: granted.value === "" ? undefined : granted.value === "true",
        resourceType: (resourceType.value || undefined) as "token" | "timeslice" | undefined,
        from: isoFromLocal(from.value),
        to: isoFromLocal(to.value),
        limit: 50,
        cursor: pager.current,
      });
      if (ctx.isStale()) return;
      const rows = page.items.map((r) =>
        h(
          "tr",
          { data: { id: r.id } },
          h("td", { class: "time" }, fmtTime(r.createdAt)),
          h("td", { class: "mono" }, r.requesterId),
          h("td", null, resourceText(r)),
          h("td", { class: "small" }, `${fmtTime(r.startTime)} → ${fmtTime(r.endTime)}`),
          h("td", null, r.purpose ?? "—"),
          h("td", null, r.granted ? badge("granted", "ok") : badge("denied", "bad")),
          h("td", { class: "small" }, r.denialReason ?? (r.keyCount !== null ? `${r.keyCount} keys` : "")),
          h(
            "td",
            { class: "mono small", title: fmtJson(r.policyIds, 1000) },
            r.policyId ? r.policyId.slice(0, 8) : "—",
          ),
        ),
      );
      replace(
        listSlot,
        table(
          ["When", "Requester", "Resource", "Data range", "Purpose", "Decision", "Reason", "Policy"],
          rows,
          "No access requests match.",
        ),
        pager.controls(page.nextCursor, () => void load()),
      );
    } catch (err) {
      showErrors(filters, err);
    }
  }

  const filters: HTMLFormElement = h(
    "form",
    {
      class: "filters",
      novalidate: true,
      data: { form: "filters" },
      onsubmit: (e: SubmitEvent) => {
        e.preventDefault();
        pager.reset();
        void load();
      },
    },
    field("Requester id", requesterId, { name: "requesterId" }),
    field("Decision", granted, { name: "granted" }),
    field("Resource", resourceType, { name: "resourceType" }),
    field("From", from, { name: "from" }),
    field("To", to, { name: "to" }),
    h("button", { type: "submit", class: "primary" }, "Apply"),
    h("p", { class: "form-error", role: "alert" }),
  );
  replace(root, h("section", { class: "panel" }, filters, listSlot));
  await load();
};
