/** Long scripts' progress: a redrawn bar where a terminal is attached, plain lines otherwise. */
import { expect, test } from "bun:test";
import { createProgress } from "../../scripts/lib/progress.ts";

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return {
    chunks,
    out: {
      isTTY,
      write: (s: string) => {
        chunks.push(s);
        return true;
      },
    } as unknown as NodeJS.WriteStream,
  };
}

test("a terminal gets one redrawn bar line; a pipe gets plain progress lines", () => {
  const tty = sink(true);
  const bar = createProgress("re-encrypting", { out: tty.out, everyMs: 0 });
  bar.update(25, 100, "→ v2");
  bar.finish(100, 100);
  expect(tty.chunks[0]).toBe(`\rre-encrypting [${"#".repeat(8)}${".".repeat(22)}]  25% 25/100 → v2\x1b[K`);
  expect(tty.chunks.at(-1)).toBe("\n");
  expect(tty.chunks.every((c) => !c.slice(0, -1).includes("\n"))).toBe(true);

  const pipe = sink(false);
  const lines = createProgress("removing", { out: pipe.out, everyMs: 0 });
  lines.update(500, 1000);
  lines.finish(1000, 1000);
  expect(pipe.chunks).toEqual(["removing: 500/1000 (50%)\n", "removing: 1000/1000 (100%)\n"]);
});
