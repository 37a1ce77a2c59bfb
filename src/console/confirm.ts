/**
 * A consequential action behind a second click: the button turns into an optional prompt, the
 * confirming button and Cancel. A failure is reported in the status line and the first button
 * comes back, so the user can retry.
 */
import type { PageContext } from "./context.ts";
import { h, replace } from "./dom.ts";
import { describeError } from "./errors.ts";

export interface ConfirmOptions {
  label: string;
  confirmLabel: string;
  prompt?: string;
  /** The first button looks dangerous too (the confirming one always does). */
  danger?: boolean;
  /** Element the control lives in (default a span); e.g. "div" for a block of its own. */
  tag?: "span" | "div";
  run: () => Promise<void>;
}

export function confirmAction(ctx: PageContext, o: ConfirmOptions): HTMLElement {
  const wrap = h(o.tag ?? "span", { class: "inline-confirm" });
  const start = h(
    "button",
    { type: "button", class: o.danger ? "danger" : undefined, onclick: () => replace(wrap, confirm) },
    o.label,
  );
  const yes = h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        yes.disabled = true;
        try {
          await o.run();
        } catch (err) {
          ctx.notify(describeError(err), "bad");
          replace(wrap, start);
        } finally {
          yes.disabled = false;
        }
      },
    },
    o.confirmLabel,
  );
  const confirm = h(
    "span",
    { class: "confirm" },
    o.prompt ?? null,
    yes,
    h("button", { type: "button", onclick: () => replace(wrap, start) }, "Cancel"),
  );
  replace(wrap, start);
  return wrap;
}
