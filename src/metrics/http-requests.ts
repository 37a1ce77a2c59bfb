/**
 * chronokms_http_requests_total and chronokms_http_request_duration_seconds, fed once per request.
 * prom-client's Counter and Histogram validated, sorted and hashed the labels on every
 * observation (~1.4 µs a request, a tenth of a public route's CPU); here a request is two map
 * lookups, a bucket search and three additions, and the values are handed to the registry in
 * prom-client's own shapes when scraped, so the exposition text is the same (a test compares them).
 */
import type { Metric, Registry } from "prom-client";

/** Latency buckets (seconds). */
export const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
const METHOD_INDEX = new Map([...METHODS].map((m, i) => [m, i]));

interface Series {
  labels: { route: string; method: string; status: string };
  count: number;
  sum: number;
  /** Observations per bucket (not cumulative); ones above the last bound are only in `count`. */
  buckets: number[];
}

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

export class HttpRequestMetrics {
  // Series by route template (interned strings from the router), then status and method.
  readonly #byRoute = new Map<string, Map<number, Series>>();
  // Every series in the order it first appeared: prom-client's order in the exposition.
  readonly #series: Series[] = [];

  constructor(registry: Registry) {
    const series = this.#series;
    const register = (m: { name: string; help: string; type: string; get(): Promise<unknown> }) =>
      registry.registerMetric({ ...m, aggregator: "sum" } as unknown as Metric);
    register({
      name: "chronokms_http_requests_total",
      help: "HTTP requests by route template, method and status",
      type: "counter",
      get: async () => ({
        name: "chronokms_http_requests_total",
        help: "HTTP requests by route template, method and status",
        type: "counter",
        aggregator: "sum",
        values: series.map((s): MetricValue => ({ value: s.count, labels: s.labels })),
      }),
    });
    const name = "chronokms_http_request_duration_seconds";
    register({
      name,
      help: "HTTP request latency by route template, method and status",
      type: "histogram",
      get: async () => ({
        name,
        help: "HTTP request latency by route template, method and status",
        type: "histogram",
        aggregator: "sum",
        values: series.flatMap((s): MetricValue[] => {
          let acc = 0;
          return [
            ...HTTP_BUCKETS.map((le, i) => {
              acc += s.buckets[i]!;
              return { value: acc, labels: { le, ...s.labels }, metricName: `${name}_bucket` };
            }),
            { value: s.count, labels: { le: "+Inf", ...s.labels }, metricName: `${name}_bucket` },
            { value: s.sum, labels: { ...s.labels }, metricName: `${name}_sum` },
            { value: s.count, labels: { ...s.labels }, metricName: `${name}_count` },
          ];
        }),
      }),
    });
  }

  /** One finished request: route template (or "unmatched"), method, status, seconds. */
  observe(route: string, method: string, status: number, seconds: number): void {
    let byRoute = this.#byRoute.get(route);
    if (!byRoute) {
      byRoute = new Map();
      this.#byRoute.set(route, byRoute);
    }
    const key = status * 8 + (METHOD_INDEX.get(method) ?? 7);
    let s = byRoute.get(key);
    if (!s) {
      s = {
        labels: { route, method: METHODS.has(method) ? method : "OTHER", status: String(status) },
        count: 0,
        sum: 0,
        buckets: HTTP_BUCKETS.map(() => 0),
      };
      byRoute.set(key, s);
      this.#series.push(s);
    }
    s.count++;
    s.sum += seconds;
    for (let i = 0; i < HTTP_BUCKETS.length; i++) {
      if (seconds <= HTTP_BUCKETS[i]!) {
        s.buckets[i]!++;
        break;
      }
    }
  }
}
