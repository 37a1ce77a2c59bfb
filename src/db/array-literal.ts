/**
 * A PostgreSQL array literal (`{"a",2,NULL}`) for an array parameter (`$n::text[]`, `::int[]`,
 * `::uuid[]`), written in one join instead of `pg`'s per-element escaping, and usable with Bun's
 * native client too: every string element quoted, with `"` and `\` backslash-escaped inside the
 * quotes, so no value can end an element, read as NULL or split the array.
 */
export function pgArrayLiteral(values: ReadonlyArray<string | number | null>): string {
  return `{${values.map((v) => (v === null ? "NULL" : typeof v === "number" ? v : `"${escaped(v)}"`)).join(",")}}`;
}

function escaped(s: string): string {
  return s.includes('"') || s.includes("\\") ? s.replace(/["\\]/g, "\\$&") : s;
}
