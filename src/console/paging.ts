/** Cursor paging for list pages: remembers the cursors behind the current page so "Previous" works. */
import { h } from "./dom.ts";

export class CursorPager {
  private stack: (string | undefined)[] = [];
  current: string | undefined;

  reset() {
    this.stack = [];
    this.current = undefined;
  }

  /** Moves to the page after the current one. */
  advance(nextCursor: string) {
    this.stack.push(this.current);
    this.current = nextCursor;
  }

  /** Controls for a page whose answer carried `nextCursor`; `load` re-renders. */
  controls(nextCursor: string | null, load: () => void): HTMLElement {
    const prev = h(
      "button",
      {
        type: "button",
        disabled: this.stack.length === 0,
        onclick: () => {
          this.current = this.stack.pop();
          load();
        },
      },
      "← Previous",
    );
    const next = h(
      "button",
      {
        type: "button",
        class: "next-page",
        disabled: !nextCursor,
        onclick: () => {
          if (nextCursor) this.advance(nextCursor);
          load();
        },
      },
      "Next →",
    );
    return h("div", { class: "pager" }, prev, h("span", { class: "muted" }, `page ${this.stack.length + 1}`), next);
  }
}
