/** The typed Hono context shared by every route and middleware. */
import type { Logger } from "../log.ts";
import type { Principal } from "../access/principal.ts";

export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    /** Set by the auth middleware on authenticated routes. */
    principal: Principal;
    /** Read it with clientAddressOf (middleware/request-context.ts): the peer address is looked up on first use. */
    clientAddress: string;
  };
}
