/**
 * The token proxy: forwards a caller's request to its provider's API with the stored access token
 * injected, so an application (role `proxy`) uses a token it can never read. Every call is the
 * same access decision as a token read (the vault's), then one TOKEN_PROXIED audit row (method,
 * path template, upstream status; never bodies, queries or tokens) before the answer goes back.
 */
import type { Principal } from "../access/principal.ts";
import type { AuditSink } from "../audit/types.ts";
import type { Config } from "../config.ts";
import { BadRequestError, ChronoError, isExpectedError, UpstreamError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { providerNameFor } from "../tokens/providers.ts";
import { tokenTarget } from "../tokens/record.ts";
import type { TokenVault } from "../tokens/vault.ts";
import { isPrivateAddress, systemResolver, type Resolver } from "./address.ts";
import { buildTarget, callerResponseHeaders, pathTemplate, upstreamRequestHeaders } from "./target.ts";

export const PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] as const;
const WITH_BODY = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface ProxyCall {
  integration: string;
  userId: string;
  method: string;
  /** The path after `/v1/proxy/{integration}/{userId}/`, percent-encoded as it arrived. */
  rawPath: string;
  /** `?…` or "". */
  search: string;
  headers: Headers;
  body: ReadableStream<Uint8Array> | null;
  purpose?: string;
}

export interface TokenProxyDeps {
  vault: Pick<TokenVault, "read">;
  audit: AuditSink;
  log: Logger;
  endpoints: Config["providerEndpoints"];
  limits: Config["proxy"];
  resolve?: Resolver;
}

/** A request body larger than PROXY_MAX_REQUEST_BYTES (413). */
export class ProxyBodyTooLargeError extends ChronoError {
  constructor(max: number) {
    super("PAYLOAD_TOO_LARGE", `proxied request body exceeds ${max} bytes`);
  }
}

export class TokenProxy {
  readonly #d: TokenProxyDeps;
  readonly #resolve: Resolver;

  constructor(deps: TokenProxyDeps) {
    this.#d = deps;
    this.#resolve = deps.resolve ?? systemResolver;
  }

  async forward(principal: Principal, call: ProxyCall): Promise<Response> {
    const method = call.method.toUpperCase();
    if (!(PROXY_METHODS as readonly string[]).includes(method))
      throw new BadRequestError(`proxy: method ${method} is not forwarded`);
    const provider = providerNameFor(call.integration);
    const ep = this.#d.endpoints[provider];
    if (!ep.apiBase)
      throw new BadRequestError(`proxy: no API base for integration ${call.integration}; set ${provider}_API_BASE`);
    const target = buildTarget(ep.apiBase, call.rawPath, call.search);
    const { maxRequestBytes } = this.#d.limits;
    const declared = Number(call.headers.get("content-length") ?? "0");
    if (Number.isFinite(declared) && declared > maxRequestBytes) throw new ProxyBodyTooLargeError(maxRequestBytes);

    const key = { integration: call.integration, userId: call.userId };
    const readOpts = { ...(call.purpose ? { purpose: call.purpose } : {}) };
    // The decision (and its audit row) — exactly what a token read is; denial, 404, 409 and 503 surface as they do there.
    const first = await this.#d.vault.read(principal, key, { refresh: "auto", ...readOpts });
    const audit = (status: number | null, extra: Record<string, unknown>) =>
      this.#d.audit.record({
        eventType: "TOKEN_PROXIED",
        actor: principal.requesterId,
        target: tokenTarget(call.integration, call.userId),
        success: status !== null && status < 400,
        details: { provider, method, path: pathTemplate(call.rawPath), status, keyId: principal.keyId, ...extra },
      });

    if (!ep.apiBaseConfigured) {
      const refused = await this.#privateAddress(target.hostname);
      if (refused) {
        await audit(null, { refused: "private-address" });
        throw new UpstreamError(`proxy: ${target.hostname} resolved to a non-public address; refused`);
      }
    }

    // The body streams upstream through a size counter; a copy is kept (bounded by the same
    // limit) only so that a 401 can be retried once with a refreshed token.
    let tooLarge = false;
    let bodies: [ReadableStream<Uint8Array>, ReadableStream<Uint8Array>] | null = null;
    if (call.body && WITH_BODY.has(method)) {
      let seen = 0;
      const counted = call.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, ctl) {
            seen += chunk.byteLength;
            if (seen > maxRequestBytes) {
              tooLarge = true;
              ctl.error(new ProxyBodyTooLargeError(maxRequestBytes));
              return;
            }
            ctl.enqueue(chunk);
          },
        }),
      );
      bodies = counted.tee();
    }

    let res: Response;
    let retried = false;
    try {
      res = await this.#send(method, target, call.headers, first.accessToken, bodies?.[0] ?? null);
      if (res.status === 401) {
        const again = await this.#d.vault
          .read(principal, key, { refresh: "force", ...readOpts })
          .catch((err: unknown) => {
            this.#d.log.info("proxy: refresh after upstream 401 failed", {
              target: tokenTarget(call.integration, call.userId),
              code: isExpectedError(err) ? err.code : "error",
            });
            return null;
          });
        if (again && again.accessToken !== first.accessToken) {
          await res.body?.cancel().catch(() => {});
          retried = true;
          res = await this.#send(method, target, call.headers, again.accessToken, bodies?.[1] ?? null);
        }
      }
    } catch (err) {
      await bodies?.[1].cancel().catch(() => {});
      if (tooLarge || err instanceof ProxyBodyTooLargeError) {
        await audit(null, { refused: "request-too-large", retried });
        throw new ProxyBodyTooLargeError(maxRequestBytes);
      }
      const reason =
        err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError") ? "timeout" : "network";
      await audit(null, { error: reason, retried });
      throw new UpstreamError(`proxy: the provider's API did not answer (${reason})`, { reason });
    }
    if (!retried) await bodies?.[1].cancel().catch(() => {});

    if (REDIRECTS.has(res.status)) {
      const location = res.headers.get("location");
      const to = location ? safeUrl(location, target) : null;
      if (!to || to.origin !== target.origin) {
        await res.body?.cancel().catch(() => {});
        await audit(res.status, { refused: "redirect-other-host", retried });
        throw new UpstreamError("proxy: the provider's API redirected to another host; not followed");
      }
    }

    const max = this.#d.limits.maxResponseBytes;
    const length = Number(res.headers.get("content-length") ?? "0");
    if (Number.isFinite(length) && length > max) {
      await res.body?.cancel().catch(() => {});
      await audit(res.status, { refused: "response-too-large", retried });
      throw new UpstreamError(`proxy: the provider's response exceeds ${max} bytes`);
    }
    try {
      await audit(res.status, { retried });
    } catch (err) {
      await res.body?.cancel().catch(() => {});
      throw err;
    }
    let sent = 0;
    const body =
      res.body === null || method === "HEAD"
        ? null
        : res.body.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, ctl) {
                sent += chunk.byteLength;
                // Headers are gone already: past the limit the stream is cut (the caller sees a truncated body).
                if (sent > max) ctl.error(new Error("proxied response exceeds PROXY_MAX_RESPONSE_BYTES"));
                else ctl.enqueue(chunk);
              },
            }),
          );
    return new Response(body, {
      status: res.status,
      statusText: res.statusText,
      headers: callerResponseHeaders(res.headers),
    });
  }

  async #send(
    method: string,
    target: URL,
    headers: Headers,
    accessToken: string,
    body: ReadableStream<Uint8Array> | null,
  ): Promise<Response> {
    // Bounded wait for the response headers; a streaming body is not cut by it.
    const ctl = new AbortController();
    const timer = setTimeout(
      () => ctl.abort(new DOMException("proxy timeout", "TimeoutError")),
      this.#d.limits.timeoutMs,
    );
    try {
      return await fetch(target, {
        method,
        headers: upstreamRequestHeaders(headers, accessToken),
        redirect: "manual",
        signal: ctl.signal,
        ...(body ? { body, duplex: "half" } : {}),
      } as RequestInit);
    } finally {
      clearTimeout(timer);
    }
  }

  /** True when any address the host resolves to (or the literal address) is not public. */
  async #privateAddress(hostname: string): Promise<boolean> {
    const host = hostname.replace(/^\[|\]$/g, "");
    let addresses: string[];
    try {
      addresses = /^[\d.]+$/.test(host) || host.includes(":") ? [host] : await this.#resolve(host);
    } catch {
      throw new UpstreamError(`proxy: ${host} could not be resolved`);
    }
    return addresses.length === 0 || addresses.some(isPrivateAddress);
  }
}

function safeUrl(location: string, base: URL): URL | null {
  try {
    return new URL(location, base);
  } catch {
    return null;
  }
}
