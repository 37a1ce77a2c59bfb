/**
 * Where the KEK comes from: `MASTER_KEY_ENCRYPTION_KEY`, or outside production a development KEK
 * kept in `<DATA_DIR>/dev-kek` (created once, announced loudly at every start). The I/O half of
 * src/crypto/kek.ts.
 */
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Config } from "../config.ts";
import {
  KEK_HOWTO,
  generateKek,
  kekFingerprint,
  parseKek as parseKekBytes,
  toHex,
  weakKekReason,
  zeroize,
} from "../crypto/index.ts";
import { KekFormatError } from "../crypto/errors.ts";
import { ConfigError } from "../errors.ts";
import type { Logger } from "../log.ts";

/** A configured KEK that does not parse is a configuration error (the crypto layer's own error says why). */
function parseKek(value: string, name: string): Uint8Array<ArrayBuffer> {
  try {
    return parseKekBytes(value, name);
  } catch (e) {
    throw e instanceof KekFormatError ? new ConfigError(e.message) : e;
  }
}

export interface ResolvedKek {
  kek: Uint8Array;
  kekId: string;
  source: "env" | "dev-file";
}

export const DEV_KEK_FILE = "dev-kek";

export function devKekPath(config: Pick<Config, "dataDir">): string {
  return resolve(join(config.dataDir, DEV_KEK_FILE));
}

export interface ResolveKekOptions {
  /**
   * kekIds of the master keys already stored. With none set and the development KEK file missing,
   * a non-empty list means the file was lost: refuse, create nothing (a new KEK opens none of them).
   */
  wrappedBy?: readonly string[];
  /** Also write the development-KEK warning to the structured log (default true). */
  logDevKek?: boolean;
}

export function resolveKek(
  config: Pick<Config, "kek" | "isProduction" | "dataDir">,
  log: Logger,
  stderr: (line: string) => void = (l) => console.error(l),
  opts: ResolveKekOptions = {},
): ResolvedKek {
  if (config.kek !== undefined) {
    if (config.kek.trim() === "") {
      throw new ConfigError(
        `MASTER_KEY_ENCRYPTION_KEY is set but empty; set it to 32 random bytes as 64 hex characters (${KEK_HOWTO})` +
          (config.isProduction ? "" : ", or unset it to use the development KEK"),
      );
    }
    const kek = parseKek(config.kek, "MASTER_KEY_ENCRYPTION_KEY");
    const weak = weakKekReason(kek, config.kek);
    if (weak) {
      zeroize(kek);
      throw new ConfigError(
        `MASTER_KEY_ENCRYPTION_KEY is not a random key: ${weak}; a KEK must be 32 random bytes — ${KEK_HOWTO}`,
      );
    }
    return { kek, kekId: kekFingerprint(kek), source: "env" };
  }
  if (config.isProduction) {
    throw new ConfigError(
      `MASTER_KEY_ENCRYPTION_KEY is not set; in production it is required (no development KEK is ever created there): it must be 32 random bytes as 64 hex characters or 43 base64url characters — ${KEK_HOWTO}`,
    );
  }
  const path = devKekPath(config);
  const wrappedBy = [...new Set(opts.wrappedBy ?? [])];
  const existing = readDevKek(path);
  if (!existing && wrappedBy.length > 0) {
    throw new ConfigError(
      `the development KEK file ${path} is missing, but master_keys holds keys wrapped by KEK ${wrappedBy.join(", ")}: ` +
        "restore that file from a backup, or set MASTER_KEY_ENCRYPTION_KEY to the KEK with that fingerprint (nothing was created)",
    );
  }
  const { kek, created } = existing ? { kek: existing, created: false } : readOrCreateDevKek(path);
  const kekId = kekFingerprint(kek);
  const message =
    `USING A DEVELOPMENT KEK from ${path}${created ? " (just created)" : ""}: anyone who can read that file can decrypt every key. ` +
    `Set MASTER_KEY_ENCRYPTION_KEY to a real KEK before storing anything that matters (${KEK_HOWTO}); production (NODE_ENV=production) refuses to start without one.`;
  // Scripts log to stderr too: there the one human line is enough (logDevKek: false).
  if (opts.logDevKek ?? true) log.warn(message, { kekId, source: "dev-file" });
  stderr(`chronokms: WARNING: ${message}`);
  return { kek, kekId, source: "dev-file" };
}

/** The KEK being rotated away from, for `keys:rewrap-kek`. */
export function resolvePreviousKek(config: Pick<Config, "kekPrevious">): { kek: Uint8Array; kekId: string } {
  if (config.kekPrevious === undefined) {
    throw new ConfigError(
      "MASTER_KEY_ENCRYPTION_KEY_PREVIOUS is not set; set it to the KEK the master keys are wrapped with now, and MASTER_KEY_ENCRYPTION_KEY to the new one",
    );
  }
  const kek = parseKek(config.kekPrevious, "MASTER_KEY_ENCRYPTION_KEY_PREVIOUS");
  return { kek, kekId: kekFingerprint(kek) };
}

const DEV_KEK_RE = /^[0-9a-f]{64}$/;

/**
 * Creates the file atomically (write a private temp file, then link(2), which fails if the name
 * exists), so two processes starting together on a fresh data directory end up with one KEK.
 */
function readOrCreateDevKek(path: string): { kek: Uint8Array; created: boolean } {
  const existing = readDevKek(path);
  if (existing) return { kek: existing, created: false };
  mkdirSync(resolve(path, ".."), { recursive: true, mode: 0o700 });
  const kek = generateKek();
  const hex = toHex(kek);
  zeroize(kek);
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, `${hex}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(tmp, 0o600); // the umask may have narrowed, never widened, but be explicit
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    unlinkSync(tmp);
  }
  const kekNow = readDevKek(path);
  if (!kekNow) throw new ConfigError(`the development KEK file ${path} could not be read back after creating it`);
  return { kek: kekNow, created: true };
}

function readDevKek(path: string): Uint8Array | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new ConfigError(
      `the development KEK file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  const hex = text.trim();
  if (!DEV_KEK_RE.test(hex)) {
    throw new ConfigError(
      `the development KEK file ${path} is not 64 lowercase hex characters; restore it, or set MASTER_KEY_ENCRYPTION_KEY (${KEK_HOWTO})`,
    );
  }
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  return parseKek(hex, path);
}
