/** Access requests: every decision (grant or denial) with filters and cursor paging. */
import type { AccessRequestRecord } from "../../client/types.ts";
import type { Page } from "../context.ts";
import { badge, field, fmtJson, fmtTime, h, isoFromLocal, replace } from "../dom.ts";
import { pagedList } from "../list-view.ts";

function resourceText(r: AccessRequestRecord): string {
  const res = r.resource as { type?: string; integration?: string; userId?: string } | null;
  if (res?.type === "token") return `token ${res.integration ?? "?"}/${res.userId ?? "?"}`;
  return res?.type ?? r.resourceType;
}

export const accessRequestsPage: Page = async (ctx) => {
  const { client, root } = ctx;
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

  const view = pagedList(ctx, {
    fields: [
      field("Requester id", requesterId, { name: "requesterId" }),
      field("Decision", granted, { name: "granted" }),
      field("Resource", resourceType, { name: "resourceType" }),
      field("From", from, { name: "from" }),
      field("To (exclusive)", to, { name: "to" }),
    ],
    query: (cursor) =>
      client.listAccessRequests({
        requesterId: requesterId.value.trim() || undefined,
        granted: granted.value === "" ? undefined : granted.value === "true",
        resourceType: (resourceType.value || undefined) as "token" | "timeslice" | undefined,
        from: isoFromLocal(from.value),
        to: isoFromLocal(to.value),
        limit: 50,
        cursor,
      }),
    headers: ["When", "Requester", "Resource", "Data range", "Purpose", "Decision", "Reason", "Policy"],
    row: (r) =>
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
        h("td", { class: "mono small", title: fmtJson(r.policyIds, 1000) }, r.policyId ? r.policyId.slice(0, 8) : "—"),
      ),
    empty: "No access requests match.",
  });
  replace(root, h("section", { class: "panel" }, view.filters, view.list));
  await view.load();
};
