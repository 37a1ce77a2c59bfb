/** Progress output for long scripts: a redrawn bar on a TTY, plain throttled lines otherwise. */

export interface Progress {
  update(done: number, total: number, note?: string): void;
  finish(done: number, total: number, note?: string): void;
}

export function createProgress(
  label: string,
  opts: { tty?: boolean; out?: NodeJS.WriteStream; everyMs?: number } = {},
): Progress {
  const out = opts.out ?? process.stderr;
  const tty = opts.tty ?? Boolean(out.isTTY);
  const everyMs = opts.everyMs ?? (tty ? 100 : 1000);
  let last = -Infinity;
  const line = (done: number, total: number, note = "") => {
    const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100;
    if (!tty) return `${label}: ${done}/${total} (${pct}%)${note ? ` ${note}` : ""}`;
    const width = 30;
    const filled = Math.round((pct / 100) * width);
    return `\r${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(pct).padStart(3)}% ${done}/${total}${note ? ` ${note}` : ""}\x1b[K`;
  };
  const write = (s: string) => out.write(tty ? s : `${s}\n`);
  return {
    update(done, total, note) {
      const now = performance.now();
      if (now - last < everyMs) return;
      last = now;
      write(line(done, total, note));
    },
    finish(done, total, note) {
      write(line(done, total, note));
      if (tty) out.write("\n");
    },
  };
}
