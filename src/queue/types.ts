import type { RequestType } from '../config/types.js';
import type { ConnectionResult, JobRequest, JobResult } from '../engine/index.js';

/** Where a job is in its life. The last three are final. */
export type JobState = 'queued' | 'running' | 'succeeded' | 'partial' | 'failed';

/** What a client submits (already validated by the API layer): a request plus an optional client key. */
export interface JobSubmission extends JobRequest {
  /** Client key for idempotency: the same id returns the same job and never runs it twice. */
  readonly id?: string;
}

/** A job as the API shows it. Never carries identifiers. */
export interface JobView {
  id: string;
  type: RequestType;
  status: JobState;
  created_at: string;
  started_at?: string;
  finished_at?: string;
  /** Per-connection results once final (same shape as the CLI's --json); [] before. */
  connections: ConnectionResult[];
  /** Set when the job could not run at all (e.g. an unknown connection). */
  error?: { code: string; message: string };
}

/** A job handed to the processor: the view plus the request it must carry out. */
export interface QueuedJob {
  readonly id: string;
  readonly submission: JobSubmission;
  /** How many times it has been started (> 1 after a crash or a hand-back). */
  readonly attempt: number;
}

/** Runs one job; the signal aborts it at shutdown (the job is then handed back, not failed). */
export type JobProcessor = (job: QueuedJob, signal: AbortSignal) => Promise<JobResult>;

/** Whether a queue can record jobs now (see {@link JobQueue.health}). */
export interface QueueHealth {
  ok: boolean;
  /** When not ok: QUEUE_UNAVAILABLE. */
  code?: string;
  /** When not ok: what failed, safe to show (e.g. "the journal disk refuses writes (ENOSPC)"). */
  reason?: string;
}

/**
 * Delivers a final job to whoever waits for it (the result callback). Resolves 'delivered' or
 * 'failed' (given up: not retried again), or 'abandoned' once `signal` aborts (shutdown: the queue
 * keeps it pending and resumes it after a restart). Never rejects.
 */
export type JobNotifier = (job: JobView, signal: AbortSignal) => Promise<'delivered' | 'failed' | 'abandoned'>;

/** A durable job queue. Embedded (journal on disk) and Redis (BullMQ) implement it. */
export interface JobQueue {
  /** Accept a job durably (journaled / in Redis) before resolving. `created` is false when the client id was already known. */
  submit(job: JobSubmission): Promise<{ job: JobView; created: boolean }>;
  /** The job, or undefined when unknown. */
  get(id: string): Promise<JobView | undefined>;
  /** Resolve with the job once final, or with its current view after `timeoutMs`. */
  waitFor(id: string, timeoutMs: number): Promise<JobView | undefined>;
  /** Start processing with at most `concurrency` jobs at once in this process. */
  start(processor: JobProcessor, concurrency: number): Promise<void>;
  /** Jobs accepted but not yet started. */
  depth(): Promise<number>;
  /** Delete finished jobs that finished before `cutoffMs` (epoch ms); resolves with how many. Jobs in flight are never purged. */
  purge(cutoffMs: number): Promise<number>;
  /** Can the queue record jobs now? Never does I/O: the outcome of the latest write or command, and of the connection's state. */
  health(): QueueHealth;
  /** Stop taking jobs; let running ones finish for up to graceMs, then abort and hand them back to the queue. */
  close(graceMs: number): Promise<void>;
}
