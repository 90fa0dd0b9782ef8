/**
 * Request sources: privacy platforms that receive data subject requests (Dastra, …). `dsr-agent
 * serve` polls a source, runs each pending request as jobs and writes the outcome back. A new
 * platform is a new module implementing {@link RequestSource}.
 */
import type { RequestType } from '../config/types.js';

/** One job to run for a request: a request type and the identifiers it runs with. */
export interface PendingJob {
  readonly type: RequestType;
  /** Identifier name (as the connections' templates use it) → value. Never logged, never written back. */
  readonly identifiers: Readonly<Record<string, string>>;
}

/** A request the source holds that the agent should act on. */
export interface PendingRequest {
  /** The platform's request id, as a string. */
  readonly id: string;
  /** One job per mapped purpose, de-duplicated; [] when `attention` is set. */
  readonly jobs: readonly PendingJob[];
  /** Why the request cannot run (e.g. no identifier): reported back once, not run. Holds no identifier. */
  readonly attention?: string;
}

/** The outcome of one job, as a write-back may state it: never data, never identifiers. */
export interface JobOutcome {
  readonly jobId: string;
  readonly type: RequestType;
  readonly status: 'succeeded' | 'partial' | 'failed';
  /** Per connection: its name, its status (e.g. `succeeded`, `failed`) and how many reports it wrote. */
  readonly connections: ReadonlyArray<{ readonly name: string; readonly status: string; readonly reports: number }>;
  /** Where the job's reports are stored (a description such as `s3://bucket/prefix`). */
  readonly storage: string;
}

/** What the poller needs from a platform. */
export interface RequestSource {
  /** The source's name in the config (for logs and messages). */
  readonly name: string;
  /** Every eligible request now, all pages read; async iterable so 10,000 requests stay flat in memory. */
  list(signal: AbortSignal): AsyncIterable<PendingRequest>;
  /** Record outcomes (one per job of the request, or an attention message) on the request. */
  writeBack(requestId: string, outcome: { jobs: readonly JobOutcome[] } | { attention: string }, signal: AbortSignal): Promise<void>;
}
