/** What both queues share: job ids, turning a processor's outcome into a final record, and timing helpers. */
import { randomUUID } from 'node:crypto';
import pRetry from 'p-retry';
import { AgentError, ErrorCodes } from '../errors.js';
import { ID_PATTERN } from '../names.js';
import type { JobResult } from '../engine/index.js';
import type { JobState, JobSubmission, JobView } from './types.js';

const JOB_ID = ID_PATTERN;

/** True when `id` is a valid job id (see {@link assertJobId}). */
export function isJobId(id: unknown): id is string {
  return typeof id === 'string' && JOB_ID.test(id);
}

/** Check a client job id: 1–128 of `A-Z a-z 0-9 . _ -` (ids become file names and Redis keys). Throws BAD_REQUEST. */
export function assertJobId(id: unknown): asserts id is string {
  if (!isJobId(id)) {
    throw new AgentError(ErrorCodes.BAD_REQUEST, 'job id must be 1-128 characters of A-Z, a-z, 0-9, ".", "_" or "-", without ".."; omit it to get a random UUID');
  }
}

/** The id a submission gets: the client's (validated) or a random UUID. */
export function makeJobId(submission: JobSubmission): string {
  if (submission.id === undefined) return randomUUID();
  assertJobId(submission.id);
  return submission.id;
}

/** True for succeeded, partial and failed. */
export function isFinal(status: JobState): boolean {
  return status === 'succeeded' || status === 'partial' || status === 'failed';
}

/** How a job attempt ended, as stored by either queue. */
export interface JobOutcome {
  status: 'succeeded' | 'partial' | 'failed';
  connections: JobView['connections'];
  error?: { code: string; message: string };
}

/**
 * Decide what a settled processor means. `undefined` means "hand the job back": the queue's close
 * signal was aborted and the job did not fully succeed (an aborted engine run resolves with
 * CANCELLED connections, which must not become the final answer). A throw is a failed job: an
 * AgentError keeps its code (e.g. CONNECTION_NOT_FOUND), anything else is INTERNAL with a fixed
 * message (the error itself goes to the log at DEBUG, as it may carry personal data).
 */
export function settleOutcome(
  settled: { ok: true; result: JobResult } | { ok: false; error: unknown },
  closeAborted: boolean,
): JobOutcome | undefined {
  if (settled.ok) {
    if (closeAborted && settled.result.status !== 'succeeded') return undefined;
    return { status: settled.result.status, connections: settled.result.connections };
  }
  if (closeAborted) return undefined;
  const err = settled.error;
  const error =
    err instanceof AgentError
      ? err.toJSON()
      : { code: ErrorCodes.INTERNAL, message: 'the job failed with an unexpected error; run with LOGLEVEL=DEBUG for details' };
  return { status: 'failed', connections: [], error };
}

/**
 * Run `op` until it succeeds, waiting `minMs` doubling up to `maxMs` between attempts (p-retry, no
 * jitter: one process retries its own disk or Redis). The first attempt always runs; once `signal`
 * has aborted no further one does. Resolves true once it succeeded, false when given up.
 */
export async function retryUntilDone(op: () => Promise<unknown>, opts: { minMs: number; maxMs: number; signal?: AbortSignal }): Promise<boolean> {
  try {
    await op();
    return true;
  } catch {
    if (opts.signal?.aborted) return false;
  }
  try {
    await pRetry(op, {
      retries: Infinity,
      factor: 2,
      minTimeout: opts.minMs,
      maxTimeout: opts.maxMs,
      randomize: false,
      unref: true,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return true;
  } catch {
    return false; // only an abort ends an endless retry
  }
}

/** Resolves true if `p` settles within `ms`, false otherwise (it never rejects). */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Long-poll waiters by job id: `wait` resolves on `wake(id)` or after `ms`, whichever is first. */
export interface Waiters {
  wait(id: string, ms: number): Promise<void>;
  wake(id: string): void;
  /** Wake every waiter (shutdown: long polls answer now with the current view). */
  wakeAll(): void;
}

/** Make a {@link Waiters} registry (both queues' waitFor use one). */
export function makeWaiters(): Waiters {
  const waiters = new Map<string, Set<() => void>>();
  const wake = (id: string) => {
    for (const w of waiters.get(id) ?? []) w();
  };
  return {
    wait: (id, ms) =>
      new Promise<void>((resolve) => {
        const set = waiters.get(id) ?? new Set();
        waiters.set(id, set);
        const done = () => {
          clearTimeout(timer);
          set.delete(done);
          if (set.size === 0) waiters.delete(id);
          resolve();
        };
        const timer = setTimeout(done, ms);
        set.add(done);
      }),
    wake,
    wakeAll: () => {
      for (const id of [...waiters.keys()]) wake(id);
    },
  };
}

/** What a stored job still knows of its request: identifiers and connections until it is final. */
export interface StoredRequest {
  readonly type: string;
  readonly identifiers?: Readonly<Record<string, string>>;
  readonly connections?: readonly string[];
}

const sameSet = (a: readonly string[] = [], b: readonly string[] = []) => a.length === b.length && [...a].sort().every((v, i) => v === [...b].sort()[i]);
const sameMap = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => Object.hasOwn(b, k) && b[k] === v);

/**
 * Throw JOB_CONFLICT when a client id is reused for another request. The type always counts; the
 * identifiers and connections count while the stored job still has them (they are dropped once it
 * is final, so a retry of a finished job with other identifiers is not caught — nothing of them is kept).
 */
export function assertSameRequest(stored: StoredRequest, submission: JobSubmission, id: string): void {
  const differs =
    stored.type !== submission.type ||
    (stored.identifiers !== undefined && !sameMap(stored.identifiers, submission.identifiers)) ||
    (stored.identifiers !== undefined && !sameSet(stored.connections, submission.connections));
  if (differs) {
    throw new AgentError(
      ErrorCodes.JOB_CONFLICT,
      `job id '${id}' is already used by another request (a different type, identifiers or connections); use a new id for a new request`,
    );
  }
}
