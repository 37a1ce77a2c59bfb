/** Runs a script body: known failures print one clear line; exit code 1 on any failure. */
import { isExpectedError } from "../../src/errors.ts";

export async function runScript(body: () => Promise<number | undefined> | Promise<void>): Promise<never> {
  try {
    const code = await body();
    process.exit(typeof code === "number" ? code : 0);
  } catch (err) {
    if (isExpectedError(err)) console.error(`error: ${err.message}`);
    else console.error(err);
    process.exit(1);
  }
}
