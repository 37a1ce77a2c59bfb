/**
 * The default logger batches stdout (src/log.ts): nothing may be lost or reordered — lines still
 * pending when the process exits (naturally or through process.exit) are written, and a warning
 * goes out at once with every line before it.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";

const LOG = join(import.meta.dir, "../src/log.ts");

async function run(code: string): Promise<string[]> {
  const p = Bun.spawn([process.execPath, "-e", `import { createLogger } from ${JSON.stringify(LOG)};\n${code}`], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(err).toBe("");
  return out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l).msg);
}

test("pending lines are written on a natural exit and on process.exit, in order", async () => {
  expect(await run(`const l = createLogger("info"); for (let i = 0; i < 300; i++) l.info(String(i));`)).toEqual(
    Array.from({ length: 300 }, (_, i) => String(i)),
  );
  expect(await run(`const l = createLogger("info"); l.info("a"); l.info("b"); process.exit(0);`)).toEqual(["a", "b"]);
});

test("a warning is written at once, after the lines before it; stdout interleaves in order", async () => {
  const out = await run(
    `const l = createLogger("info"); l.info("first"); l.warn("second"); process.stdout.write(JSON.stringify({ msg: "raw" }) + "\\n"); l.info("third");`,
  );
  expect(out).toEqual(["first", "second", "raw", "third"]);
});
