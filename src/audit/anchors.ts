/**
 * The anchor log outside the database (SPEC §6 completeness): every signed checkpoint head is
 * appended as one JSON line and fsynced to `AUDIT_ANCHOR_FILE`, and the same entries are served by
 * `GET /v1/audit-logs/head`. Verification checks the database against them: an anchored head that
 * is missing from the database, or not the row it names, reveals deleted tails, truncation and
 * dropped chains, which no in-database chain can reveal on its own.
 *
 * One entry: { v: 1, chainId, seq, hash, statement, signature, at } where `seq`/`hash` are the
 * checkpoint row's own position and hash, and `statement`/`signature` what that row signed (the
 * head before it). The file is append-only JSON Lines; a torn last line (a crash mid-append) is
 * skipped on reading and reported.
 */
import { mkdirSync } from "node:fs";
import { open, readFile, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import type { CheckpointDetails, CheckpointStatement } from "./chain.ts";
import type { Logger } from "../log.ts";

export interface AnchorEntry {
  v: 1;
  chainId: string;
  /** Position and hash of the checkpoint row itself. */
  seq: number;
  hash: string;
  /** What the checkpoint row signed (the chain head before it). */
  statement: CheckpointStatement;
  signature: string;
  /** When it was anchored (ISO-8601). */
  at: string;
}

export interface AnchorSink {
  append(entries: AnchorEntry[]): Promise<void>;
  close(): Promise<void>;
}

/** Appends entries in order, each batch with one write + fsync. Sequential across callers. */
export class AnchorFile implements AnchorSink {
  private handle: Promise<FileHandle> | undefined;
  private tail: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {}

  append(entries: AnchorEntry[]): Promise<void> {
    if (entries.length === 0) return this.tail;
    const text = entries.map((e) => `${JSON.stringify(e)}\n`).join("");
    const next = this.tail.then(async () => {
      this.handle ??= (async () => {
        mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
        const fh = await open(this.path, "a+", 0o600);
        // A previous process killed mid-append may have left a line without its newline: end it,
        // so that fragment stays one (reported) line instead of corrupting the next entry.
        const { size } = await fh.stat();
        if (size > 0) {
          const last = Buffer.alloc(1);
          await fh.read(last, 0, 1, size - 1);
          if (last[0] !== 0x0a) await fh.appendFile("\n");
        }
        return fh;
      })();
      const fh = await this.handle;
      await fh.appendFile(text);
      await fh.sync();
    });
    // The chain of appends survives a failed one (the caller sees the failure).
    this.tail = next.catch(() => {});
    return next;
  }

  async close(): Promise<void> {
    await this.tail;
    const h = this.handle;
    this.handle = undefined;
    if (h) await (await h).close().catch(() => {});
  }
}

export interface ParsedAnchors {
  entries: AnchorEntry[];
  /** Lines that are not anchor entries (1-based line numbers), e.g. a torn last line. */
  malformed: number[];
}

export function parseAnchors(text: string): ParsedAnchors {
  const entries: AnchorEntry[] = [];
  const malformed: number[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      const e = JSON.parse(line) as AnchorEntry;
      if (isAnchorEntry(e)) entries.push(e);
      else malformed.push(i + 1);
    } catch {
      malformed.push(i + 1);
    }
  });
  return { entries, malformed };
}

export async function readAnchorFile(path: string): Promise<ParsedAnchors> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { entries: [], malformed: [] };
    throw err;
  }
  return parseAnchors(text);
}

export function isAnchorEntry(e: unknown): e is AnchorEntry {
  if (typeof e !== "object" || e === null) return false;
  const a = e as Record<string, unknown>;
  const s = a.statement as Record<string, unknown> | undefined;
  return (
    typeof a.chainId === "string" &&
    Number.isSafeInteger(a.seq) &&
    typeof a.hash === "string" &&
    typeof a.signature === "string" &&
    typeof s === "object" &&
    s !== null &&
    s.chainId === a.chainId &&
    Number.isSafeInteger(s.seq) &&
    typeof s.headHash === "string" &&
    typeof s.kind === "string"
  );
}

/** The writer's side of the anchor log: the signed checkpoints of committed rows, appended in commit order. */
export class AnchorQueue {
  failures = 0;
  #tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly sink: AnchorSink | undefined,
    private readonly log: Logger,
  ) {}

  add(rows: ReadonlyArray<{ chainId: string; seq: number; hash: string; eventType: string; details: unknown }>): void {
    if (!this.sink) return;
    const entries = rows.flatMap((r) => {
      const e = r.eventType === "AUDIT_CHECKPOINT" ? anchorEntryOf(r) : null;
      return e ? [e] : [];
    });
    if (entries.length === 0) return;
    const sink = this.sink;
    this.#tail = this.#tail.then(() =>
      sink.append(entries).catch((err) => {
        this.failures += 1;
        this.log.error("could not append to the audit anchor log", { err, entries: entries.length });
      }),
    );
  }

  /** Resolves once everything added so far is appended (or failed). */
  idle(): Promise<void> {
    return this.#tail;
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.sink?.close().catch(() => {});
  }
}

/** The anchor entry of a signed checkpoint row (none for an unsigned one). */
export function anchorEntryOf(r: { chainId: string; seq: number; hash: string; details: unknown }): AnchorEntry | null {
  const d = r.details as CheckpointDetails;
  if (typeof d?.signature !== "string") return null;
  const { signature, ...statement } = d;
  return { v: 1, chainId: r.chainId, seq: r.seq, hash: r.hash, statement, signature, at: new Date().toISOString() };
}
