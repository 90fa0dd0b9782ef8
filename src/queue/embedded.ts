/**
 * The embedded job queue: in memory, backed by a journal on disk (one file per job) so that a job
 * accepted with 202 survives a crash (even kill -9): on start, jobs the journal shows as queued or
 * running are queued again in created_at order. One process only; use the Redis queue for replicas.
 */
import { join } from 'node:path';
import type { JobResult } from '../engine/index.js';
import { AgentError, ErrorCodes } from '../errors.js';
import type { Logger } from '../logger.js';
import { makeJournal, type JobRecord } from './journal.js';
import { assertSameRequest, isFinal, makeJobId, makeWaiters, settleOutcome, settlesWithin, type JobOutcome } from './common.js';
import type { JobProcessor, JobQueue, JobSubmission, JobView } from './types.js';

/** Options for {@link makeEmbeddedQueue}. */
export interface EmbeddedQueueOptions {
  /** The journal goes to `<dataDir>/jobs` (created 0700). */
  readonly dataDir: string;
  readonly logger: Logger;
  /**
   * After close() aborts a running job, how long to wait for its processor to settle before the
   * job is handed back anyway and its late result ignored; default 5000 ms.
   */
  readonly abortSettleMs?: number;
}

interface Entry {
  record: JobRecord;
  /** Settles when the submit's journal write does. */
  durable: Promise<void>;
  /** While running: aborts the processor at shutdown. */
  controller?: AbortController;
  /** close() gave up waiting for the processor and handed the job back; ignore its result. */
  detached?: boolean;
}

const DEFAULT_ABORT_SETTLE_MS = 5 * 1000; // 5 s

/** A view for the API: never the submission (it holds identifiers). */
function toView(r: JobRecord): JobView {
  const view: JobView = { id: r.id, type: r.type, status: r.status, created_at: r.created_at, connections: [...r.connections] };
  if (r.started_at) view.started_at = r.started_at;
  if (r.finished_at) view.finished_at = r.finished_at;
  if (r.error) view.error = { ...r.error };
  return view;
}

/** Make the embedded queue. Nothing touches the disk until the first call. */
export function makeEmbeddedQueue(opts: EmbeddedQueueOptions): JobQueue {
  const log = opts.logger.child({ queue: 'embedded' });
  const journal = makeJournal(join(opts.dataDir, 'jobs'), log);
  const abortSettleMs = opts.abortSettleMs ?? DEFAULT_ABORT_SETTLE_MS;
  const jobs = new Map<string, Entry>();
  /** Ids of queued jobs, FIFO. */
  const pending: string[] = [];
  const running = new Map<string, { entry: Entry; done: Promise<void> }>();
  const waiters = makeWaiters();
  let loading: Promise<void> | undefined;
  let processor: JobProcessor | undefined;
  let concurrency = 1;
  let closing = false;

  const load = (): Promise<void> =>
    (loading ??= (async () => {
      const records = await journal.load();
      records.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
      for (const record of records) {
        if (!isFinal(record.status)) {
          record.status = 'queued'; // 'running' means a crash interrupted it: run it again
          delete record.started_at;
          pending.push(record.id);
        }
        jobs.set(record.id, { record, durable: Promise.resolve() });
      }
      log.info({ dir: journal.dir, jobs: records.length, resumed: pending.length }, 'job journal loaded');
    })().catch((err: unknown) => {
      loading = undefined; // let the next call try again
      throw err;
    }));

  async function writeQuietly(record: JobRecord, what: string): Promise<void> {
    try {
      await journal.write(record);
    } catch (err) {
      log.error({ jobId: record.id, err: { message: (err as Error).message } }, `${what}; the journal is behind, so after a restart the job may run again`);
    }
  }

  async function handBack(entry: Entry): Promise<void> {
    const r = entry.record;
    r.status = 'queued';
    delete r.started_at;
    pending.push(r.id);
    await writeQuietly(r, 'could not journal a handed-back job');
    log.info({ jobId: r.id, attempt: r.attempt }, 'job handed back to the queue');
  }

  function finish(r: JobRecord, outcome: JobOutcome): void {
    r.status = outcome.status;
    r.connections = outcome.connections;
    if (outcome.error) r.error = outcome.error;
    r.finished_at = new Date().toISOString();
    delete r.submission; // data minimisation: the identifiers go once the job is final
  }

  async function run(entry: Entry, processJob: JobProcessor): Promise<void> {
    const r = entry.record;
    const controller = new AbortController();
    entry.controller = controller;
    r.status = 'running';
    r.attempt += 1;
    r.started_at = new Date().toISOString();
    const jobLog = log.child({ jobId: r.id, attempt: r.attempt });
    // Informative only: queued and running are both resumed after a crash.
    await writeQuietly(r, 'could not journal a job start');
    let settled: { ok: true; result: JobResult } | { ok: false; error: unknown };
    try {
      const submission = r.submission as JobSubmission;
      settled = { ok: true, result: await processJob({ id: r.id, submission, attempt: r.attempt }, controller.signal) };
    } catch (error) {
      settled = { ok: false, error };
      if (!controller.signal.aborted && !(error instanceof AgentError)) jobLog.debug({ err: error }, 'processor threw');
    }
    entry.controller = undefined;
    if (entry.detached) return;
    const outcome = settleOutcome(settled, controller.signal.aborted);
    if (!outcome) return handBack(entry);
    // Journal the final record first, then show it: a GET never reports a result the disk lacks.
    const final: JobRecord = { ...r };
    finish(final, outcome);
    await writeQuietly(final, 'could not journal a finished job');
    Object.assign(r, final);
    delete r.submission;
    if (outcome.error) jobLog.error({ code: outcome.error.code }, 'job failed');
    waiters.wake(r.id);
  }

  function pump(): void {
    while (processor && !closing && running.size < concurrency && pending.length > 0) {
      const id = pending.shift() as string;
      const entry = jobs.get(id);
      if (!entry || entry.record.status !== 'queued') continue;
      const done = run(entry, processor)
        .catch((err: unknown) => log.error({ jobId: id, err: { message: (err as Error).message } }, 'job bookkeeping failed'))
        .finally(() => {
          running.delete(id);
          pump();
        });
      running.set(id, { entry, done });
    }
  }

  return {
    async submit(submission) {
      const id = makeJobId(submission);
      await load();
      const existing = jobs.get(id);
      if (existing) {
        await existing.durable;
        const r = existing.record;
        assertSameRequest({ type: r.type, ...(r.submission && { identifiers: r.submission.identifiers, connections: r.submission.connections }) }, submission, id);
        return { job: toView(existing.record), created: false };
      }
      const record: JobRecord = {
        id,
        type: submission.type,
        status: 'queued',
        created_at: new Date().toISOString(),
        attempt: 0,
        submission: { ...submission, id, identifiers: { ...submission.identifiers } },
        connections: [],
      };
      const entry: Entry = { record, durable: journal.write(record) };
      jobs.set(id, entry); // before the write settles, so a concurrent submit of the same id waits for it
      try {
        await entry.durable;
      } catch (err) {
        jobs.delete(id);
        throw err;
      }
      pending.push(id);
      log.info({ jobId: id, type: record.type }, 'job accepted');
      pump();
      return { job: toView(record), created: true };
    },

    async get(id) {
      await load();
      const entry = jobs.get(id);
      return entry ? toView(entry.record) : undefined;
    },

    async waitFor(id, timeoutMs) {
      await load();
      const entry = jobs.get(id);
      if (!entry) return undefined;
      if (!isFinal(entry.record.status) && !closing && timeoutMs > 0) {
        await waiters.wait(id, timeoutMs);
      }
      return toView(entry.record);
    },

    async start(processJob, n) {
      if (closing) throw new AgentError(ErrorCodes.INTERNAL, 'the job queue is closed; make a new queue to process jobs again');
      if (processor) throw new AgentError(ErrorCodes.INTERNAL, 'the job queue is already started; call start() once');
      if (!Number.isInteger(n) || n < 1) throw new AgentError(ErrorCodes.BAD_REQUEST, `job concurrency must be a positive integer, got ${n}`);
      await load();
      processor = processJob;
      concurrency = n;
      log.info({ concurrency, queued: pending.length }, 'job processing started');
      pump();
    },

    async depth() {
      await load();
      return pending.length;
    },

    async close(graceMs) {
      closing = true;
      waiters.wakeAll(); // long polls answer now with the current view
      if (running.size === 0) return;
      const all = Promise.allSettled([...running.values()].map((r) => r.done));
      if (await settlesWithin(all, graceMs)) return;
      log.warn({ running: running.size, graceMs }, 'shutdown grace period over: aborting running jobs and handing them back');
      const reason = new AgentError(ErrorCodes.CANCELLED, 'the agent is shutting down; the job goes back to the queue');
      for (const { entry } of running.values()) entry.controller?.abort(reason);
      if (await settlesWithin(all, abortSettleMs)) return;
      // Processors that ignore their signal: hand their jobs back now and ignore what they return.
      const stuck = [...running.values()].filter(({ entry }) => entry.controller);
      log.error({ jobs: stuck.length }, 'running jobs ignored the abort signal; handing them back anyway');
      await Promise.all(
        stuck.map(({ entry }) => {
          entry.detached = true;
          return handBack(entry);
        }),
      );
    },
  };
}
