/**
 * Where a `.cpuprofile` (from `bun run bench --cpu-prof`) spends its samples: self time by area
 * (src/<folder>, node_modules/<package>, Bun/native), by file, and by function, top N each.
 * `bun bench/profile-summary.ts <file.cpuprofile> [--top=25]`. Self time = samples whose leaf is that
 * frame; idle samples (if any) are counted apart, so percentages are of busy samples. The first
 * column is that share, the second the sample count.
 */
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

const REPO = join(import.meta.dir, "..");
const IDLE = new Set(["(idle)", "(program)"]);

function fileOf(url: string): string {
  if (!url) return "(native)";
  const path = url.startsWith("file://") ? decodeURIComponent(new URL(url).pathname) : url;
  return path.startsWith("/") ? relative(REPO, path) : path;
}

function areaOf(file: string): string {
  const nm = file.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = file.slice(nm + "node_modules/".length).split("/");
    return `node_modules/${rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (file.startsWith("src/")) {
    const parts = file.split("/");
    return parts.length > 2 ? `src/${parts[1]}` : file;
  }
  if (file === "(native)" || !file.includes("/")) return "(Bun / native)";
  return file.startsWith("..") ? "(outside the repo)" : file;
}

export function summarise(profile: Profile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  /** A native leaf (crypto, buffers, sockets) charged to the nearest frame that has a source file. */
  const callerFile = (id: number): string => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const url = byId.get(cur)!.callFrame.url;
      if (url) return fileOf(url);
    }
    return "(native)";
  };
  const hits = new Map<number, number>();
  if (profile.samples?.length) for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  else for (const n of profile.nodes) if (n.hitCount) hits.set(n.id, n.hitCount);
  const total = [...hits.values()].reduce((a, b) => a + b, 0);
  // Bun samples only while JS runs, at --cpu-prof-interval (1 ms) or slower under load: counts, not wall time.
  const deltas = [...(profile.timeDeltas ?? [])].sort((a, b) => a - b);
  const medianGapMs = deltas.length ? deltas[Math.floor(deltas.length / 2)]! / 1000 : 0;
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  const area = new Map<string, number>();
  const charged = new Map<string, number>();
  let idle = 0;
  for (const [id, n] of hits) {
    const f = byId.get(id)!.callFrame;
    if (IDLE.has(f.functionName)) {
      idle += n;
      continue;
    }
    const fl = fileOf(f.url);
    const add = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + n);
    add(fn, `${f.functionName || "(anonymous)"} ${fl}${f.url ? `:${f.lineNumber + 1}` : ""}`);
    add(file, fl);
    add(area, areaOf(fl));
    add(charged, areaOf(callerFile(id)));
  }
  const busy = total - idle;
  const lines = [
    `${total} samples over ${Math.round((profile.endTime - profile.startTime) / 1000)} ms of wall time (median gap ${medianGapMs.toFixed(2)} ms); ${busy} busy, ${idle} idle`,
  ];
  for (const [title, m, n] of [
    ["self time by area", area, top],
    ["self time by area, native frames charged to their nearest caller with a source file", charged, top],
    ["self time by file", file, top],
    ["self time by function", fn, top],
  ] as const) {
    lines.push("", `${title} (% of busy)`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n))
      lines.push(`${pct(v, busy).padStart(7)}  ${String(v).padStart(7)}  ${k}`);
  }
  return lines.join("\n");
}

const pct = (a: number, b: number) => `${b ? ((100 * a) / b).toFixed(1) : "0.0"}%`;

if (import.meta.main) {
  const args = Bun.argv.slice(2);
  const path = args.find((a) => !a.startsWith("--"));
  if (!path) {
    console.error("usage: bun bench/profile-summary.ts <file.cpuprofile> [--top=25]");
    process.exit(2);
  }
  const top = Number(/^--top=(\d+)$/.exec(args.find((a) => a.startsWith("--top=")) ?? "")?.[1] ?? 25);
  console.log(summarise(JSON.parse(readFileSync(path, "utf8")) as Profile, top));
}
