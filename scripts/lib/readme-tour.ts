/**
 * Pulls the tour's shell commands out of README.md: every ```sh block under the heading that
 * starts with "## Tour", in order. test/readme-tour.test.ts runs exactly these, so the README
 * cannot drift from what works. `bun scripts/lib/readme-tour.ts` prints them as one script.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const TOUR_HEADING = "## Tour";

export function extractTour(markdown: string): string[] {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => l.startsWith(TOUR_HEADING));
  if (start < 0) throw new Error(`README has no "${TOUR_HEADING}" heading`);
  const blocks: string[] = [];
  let current: string[] | null = null;
  for (const line of lines.slice(start + 1)) {
    if (current === null && /^## /.test(line)) break; // the next section
    if (current === null && line.trim() === "```sh") current = [];
    else if (current !== null && line.trim() === "```") {
      blocks.push(current.join("\n"));
      current = null;
    } else current?.push(line);
  }
  if (current !== null) throw new Error("README tour: unterminated ```sh block");
  if (blocks.length === 0) throw new Error("README tour: no ```sh blocks");
  return blocks;
}

export function readTour(root: string): string[] {
  return extractTour(readFileSync(join(root, "README.md"), "utf8"));
}

if (import.meta.main) console.log(readTour(join(import.meta.dir, "..", "..")).join("\n\n"));
