/** Prometheus metrics for `dsr-agent serve` (prom-client, one private registry per service). */
import type { SourceHooks } from '../sources/service.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RequestType } from '../config/types.js';
import type { EngineHooks } from '../engine/index.js';
import type { JobState } from '../queue/types.js';

/** Why a token was refused; a bounded set so the label stays low-cardinality. */
export type TokenFailureReason =
  | 'invalid_request'
  | 'invalid_client'
  | 'unsupported_grant_type'
  | 'credentials_unavailable'
  | 'throttled'
  | 'bearer_missing'
  | 'bearer_malformed'
  | 'bearer_expired'
  | 'bearer_invalid';

/** The service's metrics. */
export interface Metrics {
  /** The registry behind GET /metrics. */
  readonly registry: Registry;
  /** Pass to makeEngine({hooks}): query latency, retries and timeouts per connection. */
  readonly engineHooks: EngineHooks;
  /** Pass to makeSources: dsr_source_polls_total{source,outcome}, dsr_source_requests_total{source,action}. */
  readonly sourceHooks: SourceHooks;
  /** Count a job that reached a final state (dsr_jobs_total{type,status}). */
  jobFinished(type: RequestType, status: Extract<JobState, 'succeeded' | 'partial' | 'failed'>): void;
  /** Count a refused token request or bearer token (dsr_token_failures_total{reason}). */
  tokenFailed(reason: TokenFailureReason): void;
  /** Report `depth()` as dsr_queue_depth at each scrape (buildApp wires the queue). */
  observeQueue(queue: { depth(): Promise<number> }): void;
  /** The Prometheus text exposition. */
  render(): Promise<string>;
  /** Its Content-Type. */
  readonly contentType: string;
}

/** Latency buckets in seconds: 5 ms to 5 min (the default job_timeout_seconds). */
const QUERY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * Make the metrics on a fresh Registry (never prom-client's global one, so two services or tests in one
 * process never collide): dsr_jobs_total, dsr_queue_depth, dsr_query_duration_seconds,
 * dsr_query_retries_total, dsr_query_timeouts_total, dsr_token_failures_total, and the default process
 * metrics (prefix none: process_*, nodejs_*). Labels carry connection names and types, never personal data.
 */
export function makeMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const jobs = new Counter({ name: 'dsr_jobs_total', help: 'Jobs that reached a final state, by type and status.', labelNames: ['type', 'status'] as const, registers: [registry] });
  let depth: (() => Promise<number>) | undefined;
  new Gauge({
    name: 'dsr_queue_depth',
    help: 'Jobs accepted but not yet started.',
    registers: [registry],
    async collect() {
      if (!depth) return;
      try {
        this.set(await depth());
      } catch {
        // A queue that cannot answer (Redis down) must not break the whole scrape; readiness reports it.
        this.set(Number.NaN);
      }
    },
  });
  const duration = new Histogram({
    name: 'dsr_query_duration_seconds',
    help: 'Time per query (retries included), by connection, query type and outcome.',
    labelNames: ['connection', 'type', 'outcome'] as const,
    buckets: QUERY_BUCKETS,
    registers: [registry],
  });
  const retries = new Counter({ name: 'dsr_query_retries_total', help: 'Query retries after a network error or a fail_retry_response_codes status.', labelNames: ['connection', 'type'] as const, registers: [registry] });
  const timeouts = new Counter({ name: 'dsr_query_timeouts_total', help: 'Query types that ran past job_timeout_seconds.', labelNames: ['connection', 'type'] as const, registers: [registry] });
  const sourcePolls = new Counter({ name: 'dsr_source_polls_total', help: 'Polling rounds of a request source, by outcome.', labelNames: ['source', 'outcome'] as const, registers: [registry] });
  const sourceRequests = new Counter({
    name: 'dsr_source_requests_total',
    help: 'What request sources did with requests: taken (jobs created), skipped (already written back), written_back, failed (write-backs).',
    labelNames: ['source', 'action'] as const,
    registers: [registry],
  });
  const tokenFailures = new Counter({ name: 'dsr_token_failures_total', help: 'Refused token requests and bearer tokens, by reason.', labelNames: ['reason'] as const, registers: [registry] });

  return {
    registry,
    contentType: registry.contentType,
    engineHooks: {
      querySettled: (e) => duration.observe({ connection: e.connection, type: e.type, outcome: e.outcome }, e.durationMs / 1000),
      retried: (e) => retries.inc({ connection: e.connection, type: e.type }),
      timedOut: (e) => timeouts.inc({ connection: e.connection, type: e.type }),
    },
    sourceHooks: {
      polled: (source, outcome) => sourcePolls.inc({ source, outcome }),
      requests: (source, r) => {
        for (const action of ['taken', 'skipped', 'written_back', 'failed'] as const) if (r[action]) sourceRequests.inc({ source, action }, r[action]);
      },
    },
    jobFinished: (type, status) => jobs.inc({ type, status }),
    tokenFailed: (reason) => tokenFailures.inc({ reason }),
    observeQueue(queue) {
      depth = () => queue.depth();
    },
    render: () => registry.metrics(),
  };
}
