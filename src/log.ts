/** Structured JSON logs, one object per line on stdout. Never pass secrets in `fields`. */
import { writeSync } from "node:fs";

export type LogLevel = "debug" | "info" | "warn" | "error";
const rank: Record<LogLevel | "silent", number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

type Write = (line: string, urgent: boolean) => void;

export function createLogger(
  level: LogLevel | "silent" = "info",
  base: Record<string, unknown> = {},
  write?: (line: string) => void,
): Logger {
  return new JsonLogger(rank[level], base, write ? (line) => write(line) : stdoutLines);
}

// A class, so the child logger every request gets is one small object rather than five closures.
class JsonLogger implements Logger {
  constructor(
    private readonly min: number,
    private readonly base: Record<string, unknown>,
    private readonly write: Write,
  ) {}

  debug(msg: string, fields?: Record<string, unknown>) {
    if (this.min <= 10) this.emit("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>) {
    if (this.min <= 20) this.emit("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>) {
    if (this.min <= 30) this.emit("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>) {
    if (this.min <= 40) this.emit("error", msg, fields);
  }
  child(fields: Record<string, unknown>): Logger {
    return new JsonLogger(this.min, { ...this.base, ...fields }, this.write);
  }

  private emit(lvl: LogLevel, msg: string, fields?: Record<string, unknown>) {
    const entry = { time: new Date().toISOString(), level: lvl, msg, ...this.base, ...fields };
    // A replacer takes JSON.stringify off its fast path; only errors and bigints need one, and
    // the access line (every request) has neither.
    const line = needsReplacer(entry) ? JSON.stringify(entry, replacer) : JSON.stringify(entry);
    this.write(line, lvl === "warn" || lvl === "error");
  }
}

function needsReplacer(entry: Record<string, unknown>): boolean {
  for (const k in entry) {
    const v = entry[k];
    if (v !== null && (typeof v === "object" || typeof v === "bigint")) return true;
  }
  return false;
}

function replacer(_key: string, value: unknown) {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  if (typeof value === "bigint") return value.toString();
  return value;
}

/**
 * stdout in batches: at load, a write per request (the access line) was a syscall per request.
 * Lines wait at most FLUSH_MS (or until 256 are pending); a warning or an error goes out at once
 * with everything before it, and whatever is pending is written on exit.
 */
const FLUSH_MS = 10;
let pending: string[] = [];
let scheduled = false;

function stdoutLines(line: string, urgent: boolean): void {
  pending.push(line);
  if (urgent || pending.length >= 256) flushStdout();
  else if (!scheduled) {
    scheduled = true;
    // Unref'd: a process with nothing else to do exits (and its exit hook writes what is pending).
    setTimeout(flushStdout, FLUSH_MS).unref();
  }
}

function flushStdout(): void {
  scheduled = false;
  if (pending.length === 0) return;
  const text = `${pending.join("\n")}\n`;
  pending = [];
  process.stdout.write(text);
}

// No later turn comes after "exit": what is pending goes out synchronously.
process.on("exit", () => {
  if (pending.length === 0) return;
  const text = `${pending.join("\n")}\n`;
  pending = [];
  try {
    writeSync(1, text);
  } catch {
    // stdout already gone: nothing left to tell.
  }
});
