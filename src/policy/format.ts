import type { AccessContext } from "./types.ts";

/**
 * Small formatters for decision reasons. Reasons are read by people (403 bodies, audit views),
 * so instants are ISO-8601 and durations are "2 h 30 min", never raw milliseconds.
 */

/** ISO-8601 for representable instants; the raw number otherwise, so formatting never throws. */
export function formatInstant(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

const UNITS: [number, string][] = [
  [86_400_000, "d"],
  [3_600_000, "h"],
  [60_000, "min"],
  [1000, "s"],
];

/** "1 d 2 h", "90 min" → "1 h 30 min", "1.5 s"; sub-second precision only below one minute. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 60_000) return `${Math.round(ms) / 1000} s`;
  const out: string[] = [];
  let rest = Math.floor(ms / 1000) * 1000;
  for (const [size, unit] of UNITS) {
    if (rest >= size) {
      out.push(`${Math.floor(rest / size)} ${unit}`);
      rest %= size;
    }
  }
  return out.join(" ");
}

/** A quoted, length-capped rendering of caller- or admin-supplied text. */
export function quote(value: string, max = 80): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
}

/** `"a", "b", "c" and 4 more`: lists in reasons stay short however long the config is. */
export function quoteList(values: readonly string[], max = 5): string {
  const shown = values
    .slice(0, max)
    .map((v) => quote(v, 40))
    .join(", ");
  return values.length > max ? `${shown} and ${values.length - max} more` : shown;
}

/** `requester "alice" (department "ops")`, for reasons. */
export function describeRequester(ctx: AccessContext): string {
  const { requesterId, department } = ctx.requester;
  return department != null && department !== ""
    ? `requester ${quote(requesterId)} (department ${quote(department)})`
    : `requester ${quote(requesterId)}`;
}
