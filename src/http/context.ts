/** The typed Hono context shared by every route and middleware. */
import type { Logger } from "../log.ts";

export interface AuthPrincipal {
  /** Internal requester row id. */
  id: string;
  /** External requester id (requesters.requesterId). */
  requesterId: string;
  department: string | null;
  keyId: string;
  roles: readonly Role[];
}

export type Role = "admin" | "writer" | "reader";

export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    principal: AuthPrincipal;
    clientAddress: string;
  };
}
