/**
 * Audit verification as the console shows it, shared by Overview and Audit log. The API's answer
 * is rendered field by field; `findings` and `anchors` (newer servers) are shown when present,
 * and the first finding is highlighted.
 */
import type { AuditVerification } from "../client/types.ts";
import { badge, fmtJson, fmtNumber, fmtTime, h, replace } from "./dom.ts";
import { describeError } from "./errors.ts";

/** A finding as newer servers report them; every field optional so older answers fit too. */
export interface Finding {
  kind?: string;
  code?: string;
  reason?: string;
  message?: string;
  seq?: number;
  id?: string;
  chainId?: string | null;
}

export type Verification = AuditVerification & { findings?: Finding[]; anchors?: unknown };

/** The last verification this tab ran (memory only), with when. */
export let lastVerification: { at: Date; result: Verification } | null = null;

export async function runVerification(request: () => Promise<Verification>): Promise<Verification> {
  const result = await request();
  lastVerification = { at: new Date(), result };
  return result;
}

/**
 * The "Verify audit log" button both pages show: progress and errors in `slot`, the result
 * handed to `show`; disabled while a verification runs.
 */
export function verifyButton(
  request: () => Promise<Verification>,
  slot: HTMLElement,
  show: (v: Verification) => Promise<void> | void,
  primary = false,
): HTMLButtonElement {
  const button = h(
    "button",
    {
      type: "button",
      class: primary ? "primary" : undefined,
      onclick: async () => {
        button.disabled = true;
        replace(slot, h("p", { class: "muted" }, "Verifying…"));
        try {
          await show(await runVerification(request));
        } catch (err) {
          replace(slot, h("p", { class: "form-error" }, describeError(err)));
        } finally {
          button.disabled = false;
        }
      },
    },
    "Verify audit log",
  );
  return button;
}

/** Every finding, first one first: `findings` when the server sends them, else `firstInvalid`. */
export function findingsOf(v: Verification): Finding[] {
  if (Array.isArray(v.findings) && v.findings.length) return v.findings;
  return v.firstInvalid ? [{ ...v.firstInvalid }] : [];
}

export function verificationPanel(v: Verification, at?: Date): HTMLElement {
  const findings = findingsOf(v);
  const stat = (label: string, value: string) => h("div", null, h("dt", null, label), h("dd", null, value));
  const summary = h(
    "dl",
    { class: "stats" },
    stat("Rows checked", fmtNumber(v.checked)),
    stat("Chains", fmtNumber(v.chains)),
    stat("Signed checkpoints", fmtNumber(v.checkpoints)),
    stat("Unclosed chains", fmtNumber(v.unclosedChains)),
    stat("Unsigned tail rows", fmtNumber(v.unsignedTailRows)),
    stat("Took", `${fmtNumber(v.elapsedMs)} ms`),
    at ? stat("Verified at", fmtTime(at.toISOString())) : null,
  );
  return h(
    "div",
    { class: ["verification", v.valid ? "valid" : "invalid"], data: { valid: String(v.valid) } },
    h(
      "p",
      { class: "verdict" },
      v.valid ? badge("Audit log intact", "ok") : badge("Audit log verification failed", "bad"),
    ),
    summary,
    findings.length
      ? h(
          "ol",
          { class: "findings" },
          findings.map((f, i) =>
            h(
              "li",
              { class: i === 0 ? "finding first-finding" : "finding" },
              h("strong", null, f.kind ?? f.code ?? "finding"),
              " ",
              f.reason ?? f.message ?? "",
              f.seq !== undefined || f.chainId
                ? h("span", { class: "muted" }, ` — chain ${short(f.chainId)} seq ${f.seq ?? "?"}`)
                : null,
              f.id ? h("span", { class: "muted mono" }, ` row ${f.id}`) : null,
            ),
          ),
        )
      : null,
    v.anchors !== undefined
      ? h("p", { class: "muted" }, "Anchors: ", h("span", { class: "mono" }, fmtJson(v.anchors, 400)))
      : null,
  );
}

export function short(id: string | null | undefined, n = 8): string {
  return id ? id.slice(0, n) : "—";
}
