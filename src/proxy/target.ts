/**
 * Pure parts of the proxy: which upstream URL a caller's path may name (only below the provider's
 * API base, never another host), the path template that goes into the audit row, and which
 * headers cross in each direction.
 */
import { BadRequestError } from "../errors.ts";

const SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%]*$/;

/**
 * The upstream URL for `rawPath` (the caller's path after `/v1/proxy/{integration}/{userId}/`,
 * still percent-encoded, as it arrived) below `base`. Refused (400): empty segments (`//host`),
 * dot segments, backslashes, encoded slashes, backslashes or dots, control characters, and
 * anything that would leave the base's origin or path. The query string is passed on as it is.
 */
export function buildTarget(base: string, rawPath: string, search: string): URL {
  if (rawPath.length === 0)
    throw new BadRequestError("proxy path: empty; name the provider API path after /v1/proxy/{integration}/{userId}/");
  if (rawPath.length > 4096) throw new BadRequestError("proxy path: longer than 4096 characters");
  const segments = rawPath.split("/");
  for (const seg of segments) {
    if (seg === "")
      throw new BadRequestError(
        "proxy path: empty segment (// or a trailing slash after the prefix); absolute and scheme-relative URLs are refused",
      );
    if (!SEGMENT.test(seg))
      throw new BadRequestError(
        "proxy path: characters outside the URL path set (backslash, space, control characters…)",
      );
    if (/%(2f|5c|2e|00)/i.test(seg))
      throw new BadRequestError("proxy path: encoded slash, backslash, dot or NUL refused");
    if (/%(?![0-9a-f]{2})/i.test(seg)) throw new BadRequestError("proxy path: malformed percent-encoding");
    if (seg === "." || seg === "..") throw new BadRequestError("proxy path: dot segments refused");
  }
  if (search.length > 8192) throw new BadRequestError("proxy query: longer than 8192 characters");
  const b = new URL(base);
  const basePath = b.pathname.replace(/\/$/, "");
  const target = new URL(b.href);
  target.pathname = `${basePath}/${rawPath}`;
  target.search = search;
  // Belt and braces: whatever URL parsing did, the result must still be below the base.
  if (
    target.origin !== b.origin ||
    !target.pathname.startsWith(`${basePath}/`) ||
    target.username ||
    target.password ||
    target.hash
  ) {
    throw new BadRequestError("proxy path: would leave the provider's API base");
  }
  return target;
}

/**
 * What the audit row records instead of the path: words and API versions are kept, every other
 * segment (ids, e-mail addresses, numbers, opaque names) becomes `{id}`; the query never appears.
 */
export function pathTemplate(rawPath: string): string {
  return (
    "/" +
    rawPath
      .split("/")
      .map((s) =>
        /^(?:[A-Za-z][A-Za-z_-]{0,39}|v\d{1,3}(?:\.\d{1,3})?|[A-Za-z][A-Za-z_-]{0,39}:[A-Za-z][A-Za-z_-]{0,39})$/.test(
          s,
        )
          ? s
          : "{id}",
      )
      .join("/")
  );
}

/** RFC 9110 §7.6.1 hop-by-hop fields, plus proxy-specific ones. */
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/** Never forwarded upstream: hop-by-hop, the caller's credentials and cookies, addressing and our own headers. */
const REQUEST_DROPPED = new Set([
  ...HOP_BY_HOP,
  "authorization",
  "proxy-authorization",
  "cookie",
  "host",
  "content-length",
  "forwarded",
  "x-real-ip",
  "x-purpose",
  "x-request-id",
  "expect",
  "origin",
  "referer",
]);

/** Never passed back: hop-by-hop, cookies of the provider's domain, and encodings Bun's fetch already undid. */
const RESPONSE_DROPPED = new Set([
  ...HOP_BY_HOP,
  "set-cookie",
  "set-cookie2",
  "content-encoding",
  "content-length",
  "alt-svc",
  "strict-transport-security",
]);

function namedInConnection(h: Headers): Set<string> {
  return new Set(
    (h.get("connection") ?? "")
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
}

/** The caller's headers minus the dropped ones, with the stored access token as the bearer (RFC 6750 §2.1). */
export function upstreamRequestHeaders(incoming: Headers, accessToken: string): Headers {
  const extra = namedInConnection(incoming);
  const out = new Headers();
  incoming.forEach((value, name) => {
    const n = name.toLowerCase();
    if (
      REQUEST_DROPPED.has(n) ||
      extra.has(n) ||
      n.startsWith("x-forwarded-") ||
      n.startsWith("proxy-") ||
      n.startsWith("x-chronokms")
    )
      return;
    out.set(name, value);
  });
  out.set("Authorization", `Bearer ${accessToken}`);
  return out;
}

export function callerResponseHeaders(upstream: Headers): Headers {
  const extra = namedInConnection(upstream);
  const out = new Headers();
  upstream.forEach((value, name) => {
    const n = name.toLowerCase();
    if (RESPONSE_DROPPED.has(n) || extra.has(n)) return;
    out.append(name, value);
  });
  out.set("Cache-Control", "no-store");
  // Tells a client (the SDK) that this status and body are the provider's, not chronokms's.
  out.set("X-Chronokms-Proxy", "upstream");
  return out;
}
