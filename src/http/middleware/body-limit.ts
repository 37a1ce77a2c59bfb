/** Refuses oversized bodies with 413 before anything parses them. */
import { bodyLimit as honoBodyLimit } from "hono/body-limit";
import type { MiddlewareHandler } from "hono";
import { ChronoError } from "../../errors.ts";
import type { AppEnv } from "../context.ts";

export function bodyLimit(maxBytes: number): MiddlewareHandler<AppEnv> {
  return honoBodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ChronoError("PAYLOAD_TOO_LARGE", `request body exceeds ${maxBytes} bytes`);
    },
  });
}
