/**
 * Shows API errors where the user looks: a validation failure's issues next to the fields they
 * name (the API's own messages, so console and API say the same thing), anything else in the
 * form's alert line.
 */
import { ChronoKmsError } from "../client/errors.ts";
import { replace } from "./dom.ts";

interface Issue {
  path: string;
  message: string;
}

/** The API's one validation shape: `details: { issues: [{ path: ["a", 0], code, message }] }`. */
export function issuesOf(err: unknown): Issue[] {
  if (!(err instanceof ChronoKmsError) || err.code !== "VALIDATION_FAILED") return [];
  const raw = (err.details as { issues?: unknown } | undefined)?.issues;
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((i) => {
    const issue = i as { path?: unknown; message?: unknown };
    if (typeof issue.message !== "string") return [];
    return [{ path: Array.isArray(issue.path) ? issue.path.map(String).join(".") : "", message: issue.message }];
  });
}

export function describeError(err: unknown): string {
  if (err instanceof ChronoKmsError) return err.requestId ? `${err.message} (request ${err.requestId})` : err.message;
  return err instanceof Error ? err.message : String(err);
}

export function clearErrors(form: HTMLElement): void {
  for (const el of Array.from(form.querySelectorAll<HTMLElement>(".field-error, .form-error"))) replace(el);
  for (const el of Array.from(form.querySelectorAll(".field.invalid"))) el.classList.remove("invalid");
}

/** Puts each issue under the field whose name is the longest prefix of its path; the rest, and
 * non-validation errors, go to the form's alert line. */
export function showErrors(form: HTMLElement, err: unknown): void {
  clearErrors(form);
  const fields = Array.from(form.querySelectorAll<HTMLElement>(".field[data-field]"));
  const unplaced: string[] = [];
  const issues = issuesOf(err);
  for (const issue of issues) {
    let best: HTMLElement | undefined;
    let bestLen = -1;
    for (const f of fields) {
      const name = f.dataset.field!;
      if ((issue.path === name || issue.path.startsWith(`${name}.`)) && name.length > bestLen) {
        best = f;
        bestLen = name.length;
      }
    }
    if (!best) {
      unplaced.push(issue.path ? `${issue.path}: ${issue.message}` : issue.message);
      continue;
    }
    best.classList.add("invalid");
    const slot = best.querySelector<HTMLElement>(".field-error")!;
    const rest = issue.path.slice(best.dataset.field!.length + 1);
    const line = document.createElement("div");
    line.textContent = rest ? `${rest}: ${issue.message}` : issue.message;
    slot.appendChild(line);
  }
  const alert = form.querySelector<HTMLElement>(".form-error");
  if (!alert) return;
  if (issues.length === 0) replace(alert, describeError(err));
  else if (unplaced.length) replace(alert, unplaced.join("; "));
  else replace(alert, "Please correct the highlighted fields.");
}
