/**
 * The console's only way to build DOM: elements from tag + attributes + children, where every
 * string becomes a Text node (textContent). No HTML string is ever parsed, so data from the API
 * — a requester named `<img src=x onerror=alert(1)>` — is shown as the characters it is. The
 * page's CSP enforces this (Trusted Types: assigning a string to innerHTML throws).
 */
export type Child = Node | string | number | null | undefined | false | Child[];

type Handler<E extends Event = Event> = (e: E) => void;
export interface Props {
  class?: string | (string | false | null | undefined)[];
  onclick?: Handler<MouseEvent>;
  onsubmit?: Handler<SubmitEvent>;
  onchange?: Handler;
  oninput?: Handler;
  data?: Record<string, string>;
  /** Plain attributes. Event-handler and style attributes are refused. */
  [attr: string]: unknown;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") {
      const names = Array.isArray(value) ? value.filter(Boolean).join(" ") : String(value);
      if (names) el.className = names;
    } else if (key === "data") {
      for (const [k, v] of Object.entries(value as Record<string, string>)) el.dataset[k] = v;
    } else if (key.startsWith("on")) {
      if (typeof value !== "function") throw new Error(`${key} must be a function`);
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (key === "style" || key === "srcdoc") {
      throw new Error(`attribute ${key} is not allowed`);
    } else if (key === "value" && (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement)) {
      el.defaultValue = String(value); // so form.reset() returns to it
      el.value = String(value);
    } else if (key === "value" && el instanceof HTMLSelectElement) {
      el.value = String(value);
    } else if (key === "checked" && el instanceof HTMLInputElement) {
      el.defaultChecked = Boolean(value);
      el.checked = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else
      parent.appendChild(
        typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child,
      );
  }
}

/** Replaces every child of `parent`. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

// --- formatting ----------------------------------------------------------------------------------

/** ISO-8601 or epoch ms → "2026-11-28 04:52:51Z" (UTC, so every operator reads the same time). */
export function fmtTime(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d{3}Z$/, "Z");
}

export function fmtNumber(n: number | null | undefined): string {
  return n === null || n === undefined ? "—" : n.toLocaleString("en-US");
}

/** Compact one-line JSON for details cells (text, never markup). */
export function fmtJson(value: unknown, max = 160): string {
  if (value === null || value === undefined) return "";
  const s = JSON.stringify(value);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** A details object as "key: value · key: value" (strings unquoted), for reading at a glance. */
export function fmtDetails(value: unknown, max = 220): string {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object" || Array.isArray(value)) return fmtJson(value, max);
  const s = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" · ");
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export function badge(text: string, tone: "ok" | "bad" | "warn" | "muted" | "info"): HTMLSpanElement {
  return h("span", { class: ["badge", `badge-${tone}`] }, text);
}

/** A table inside a horizontally scrollable wrapper (phones). */
export function table(headers: string[], rows: HTMLTableRowElement[], empty = "Nothing here yet."): HTMLElement {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      null,
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          headers.map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      h(
        "tbody",
        null,
        rows.length ? rows : h("tr", null, h("td", { colspan: String(headers.length), class: "empty" }, empty)),
      ),
    ),
  );
}

/** A label + control + the place where the API's message for this field appears. */
export function field(label: string, control: HTMLElement, opts: { name: string; hint?: string }): HTMLElement {
  const id = `f-${opts.name.replace(/[^a-z0-9]+/gi, "-")}-${Math.random().toString(36).slice(2, 7)}`;
  control.id = id;
  control.setAttribute("name", opts.name);
  return h(
    "div",
    { class: "field", data: { field: opts.name } },
    h("label", { for: id }, label),
    control,
    opts.hint ? h("div", { class: "hint" }, opts.hint) : null,
    h("div", { class: "field-error", role: "alert", data: { errorFor: opts.name } }),
  );
}

export function datetimeLocal(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local value (the browser's zone) → ISO-8601, or undefined when empty. */
export function isoFromLocal(value: string): string | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

/** A text input's value trimmed, or undefined when blank (an optional field left empty). */
export const blankToUndefined = (s: string) => (s.trim() === "" ? undefined : s.trim());
