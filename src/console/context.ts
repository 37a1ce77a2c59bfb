/** What every page gets: the signed-in client and the element it renders into. */
import type { ChronoKmsClient } from "../client/api.ts";

export interface PageContext {
  client: ChronoKmsClient;
  /** The page's own element; a page re-renders parts of it, never the shell. */
  root: HTMLElement;
  /** Shows a short status message in the shell's live region. */
  notify(message: string, tone?: "ok" | "bad"): void;
  /** True once the user has navigated away (late responses must not render). */
  isStale(): boolean;
}

export type Page = (ctx: PageContext) => Promise<void> | void;
