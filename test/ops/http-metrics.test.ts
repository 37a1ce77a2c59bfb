/**
 * The per-request HTTP metrics (src/metrics/http-requests.ts) are counted without prom-client's
 * per-observation work; their exposition must be exactly what prom-client's own Counter and
 * Histogram print for the same observations (names, label order, cumulative buckets, sums).
 */
import { expect, test } from "bun:test";
import { Counter, Histogram, Registry } from "prom-client";
import { HTTP_BUCKETS, HttpRequestMetrics } from "../../src/metrics/http-requests.ts";

test("the same text as prom-client's Counter and Histogram for the same requests", async () => {
  const reference = new Registry();
  const count = new Counter({
    name: "chronokms_http_requests_total",
    help: "HTTP requests by route template, method and status",
    labelNames: ["route", "method", "status"] as const,
    registers: [reference],
  });
  const latency = new Histogram({
    name: "chronokms_http_request_duration_seconds",
    help: "HTTP request latency by route template, method and status",
    labelNames: ["route", "method", "status"] as const,
    buckets: HTTP_BUCKETS,
    registers: [reference],
  });
  const ours = new Registry();
  const http = new HttpRequestMetrics(ours);

  expect(await ours.metrics()).toBe(await reference.metrics()); // no request yet: HELP and TYPE only

  const routes = ["/v1/tokens/{integration}/{userId}", "/.well-known/jwks.json", "unmatched", 'odd "route"\\'];
  const methods = ["GET", "PUT", "PROPFIND", "DELETE", "TRACE"];
  const statuses = [200, 201, 403, 404, 503];
  let seed = 7;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let i = 0; i < 3000; i++) {
    const route = routes[Math.floor(next() * routes.length)]!;
    const method = methods[Math.floor(next() * methods.length)]!;
    const status = statuses[Math.floor(next() * statuses.length)]!;
    // Exactly on bucket bounds, between them, and above the last one.
    const seconds = i % 13 === 0 ? HTTP_BUCKETS[i % HTTP_BUCKETS.length]! : next() ** 3 * 8;
    http.observe(route, method, status, seconds);
    const labels = [route, ["GET", "PUT", "DELETE"].includes(method) ? method : "OTHER", String(status)] as const;
    count.labels(...labels).inc();
    latency.labels(...labels).observe(seconds);
  }
  const text = await ours.metrics();
  expect(text).toBe(await reference.metrics());
  expect(text).toContain('chronokms_http_request_duration_seconds_bucket{le="+Inf",route="unmatched",method="OTHER"');
});
