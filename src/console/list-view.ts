/**
 * What every list page shares: a filter form (Apply restarts paging) over a table of one page of
 * results with Previous/Next cursor controls. Errors land under the filters, where the API's
 * validation messages name the field.
 */
import type { PageContext } from "./context.ts";
import { h, replace, table } from "./dom.ts";
import { clearErrors, showErrors } from "./errors.ts";
import { CursorPager } from "./paging.ts";

export interface PagedListOptions<T> {
  /** The filter inputs, each already wrapped by `field(...)`. */
  fields: HTMLElement[];
  query: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor: string | null }>;
  headers: string[];
  row: (item: T) => HTMLTableRowElement;
  empty: string;
  /** Renders an error its own way (into the list) instead of under the filters; true when it did. */
  onError?: (err: unknown, list: HTMLElement) => boolean;
}

export interface PagedList<T> {
  filters: HTMLFormElement;
  list: HTMLElement;
  pager: CursorPager;
  /** Loads the current page; resolves to its nextCursor (null at the end or on an error). */
  load(): Promise<string | null>;
  /** The items on the page shown. */
  items(): readonly T[];
}

export function pagedList<T>(ctx: PageContext, o: PagedListOptions<T>): PagedList<T> {
  const pager = new CursorPager();
  const list = h("div");
  let shown: T[] = [];

  async function load(): Promise<string | null> {
    clearErrors(filters);
    try {
      const page = await o.query(pager.current);
      if (ctx.isStale()) return null;
      shown = page.items;
      replace(
        list,
        table(o.headers, page.items.map(o.row), o.empty),
        pager.controls(page.nextCursor, () => void load()),
      );
      return page.nextCursor;
    } catch (err) {
      if (!o.onError?.(err, list)) showErrors(filters, err);
      return null;
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
    o.fields,
    h("button", { type: "submit", class: "primary" }, "Apply"),
    h("p", { class: "form-error", role: "alert" }),
  );
  return { filters, list, pager, load, items: () => shown };
}
