/** Read one series from a running service's GET /metrics, so tests assert what their own requests changed. */

/**
 * The value of one Prometheus series at `${url}/metrics`, e.g.
 * `dsr_jobs_total{type="access",status="succeeded"}` (labels as the service prints them); 0 when absent.
 */
export async function metricValue(url: string, series: string, headers: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** The values of several series at once (one scrape each), keyed by series. */
export async function metricValues(url: string, series: readonly string[]): Promise<Record<string, number>> {
  const values = await Promise.all(series.map((s) => metricValue(url, s)));
  return Object.fromEntries(series.map((s, i) => [s, values[i]!]));
}
