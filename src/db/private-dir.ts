/**
 * The embedded database's directory is private to the service's user: 0700 directories, 0600
 * files. PGlite's file system layer (emscripten NODEFS) creates files 0666 whatever the umask, so
 * the tree is also re-restricted at open and at close; a file created while running may carry
 * 0666 until then, but it sits inside a 0700 directory no other user can enter.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` (and missing parents) 0700, and makes an existing `dir` 0700. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/** Makes `dir` 0700 if it exists (DATA_DIR at start: it holds dev-kek and the database lock); creates nothing. */
export function tightenExistingDir(dir: string): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch {
    return;
  }
  if (st.isDirectory() && (st.mode & 0o777) !== PRIVATE_DIR_MODE) chmodSync(dir, PRIVATE_DIR_MODE);
}

/** Every directory under `dir` (itself included) 0700, every regular file 0600; symlinks untouched. */
export function restrictTree(dir: string): void {
  const st = lstatSync(dir);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    if ((st.mode & 0o777) !== PRIVATE_DIR_MODE) chmodSync(dir, PRIVATE_DIR_MODE);
    for (const name of readdirSync(dir)) restrictTree(join(dir, name));
  } else if (st.isFile() && (st.mode & 0o777) !== PRIVATE_FILE_MODE) {
    chmodSync(dir, PRIVATE_FILE_MODE);
  }
}

/** Runs `fn` with umask 077, so whatever honours the umask is created private. */
export async function withPrivateUmask<T>(fn: () => Promise<T>): Promise<T> {
  const old = process.umask(0o077);
  try {
    return await fn();
  } finally {
    process.umask(old);
  }
}
