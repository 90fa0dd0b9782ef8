/**
 * The embedded job queue: in memory, backed by a journal on disk (one file per job) so that a job
 * accepted with 202 survives a crash (even kill -9): on start, jobs the journal shows as queued or
 * running are queued again in created_at order. One process only; use the Redis queue for replicas.
 *
 * Only jobs in flight live in memory; a finished job is read from the journal's finished folder on
 * demand and purged after the retention period. When the disk refuses a write the queue turns
 * unhealthy at once ({@link JobQueue.health}), refuses new jobs (QUEUE_UNAVAILABLE), starts none,
 * and retries a finished job's final record until it is written: a result is never shown, or
 * called back, before the disk has it.
 */
import { join } from 'node:path';
import type { JobResult } from '../engine/index.js';
import { AgentError, ErrorCodes, isAgentError } from '../errors.js';
import type { Logger } from '../logger.js';
import { makeJournal, type JobRecord } from './journal.js';
import { assertSameRequest, isFinal, isJobId, makeJobId, makeWaiters, retryUntilDone, settleOutcome, settlesWithin, type JobOutcome } from './common.js';
import type { JobNotifier, JobProcessor, JobQueue, JobSubmission, JobView, QueueHealth } from './types.js';

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
  /** Delivers each final job (the result callback), durably: pending deliveries are journaled and resumed after a restart. */
  readonly notify?: JobNotifier;
  /** While the disk refuses writes: first delay between retries of a final record, and probes, in ms (doubling up to 5 s). Default 250. */
  readonly retryMs?: number;
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
const DEFAULT_RETRY_MS = 250;
const MAX_RETRY_MS = 5 * 1000; // 5 s

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
  const retryMs = opts.retryMs ?? DEFAULT_RETRY_MS;
  /** Jobs in flight: queued, running, or final with a callback still to deliver. */
  const jobs = new Map<string, Entry>();
  /** Ids of queued jobs, FIFO. */
  const pending: string[] = [];
  const running = new Map<string, { entry: Entry; done: Promise<void> }>();
  const delivering = new Set<Promise<void>>();
  /** Per-id chains: a submit looks an id up (memory, then disk) and creates it as one step. */
  const idLocks = new Map<string, Promise<unknown>>();
  const waiters = makeWaiters();
  /** Aborted when close() gives up: final-record retries stop (the job stays in flight on disk and runs again). */
  const giveUp = new AbortController();
  let loading: Promise<void> | undefined;
  let processor: JobProcessor | undefined;
  let concurrency = 1;
  let closing = false;
  let unhealthy: string | undefined;
  let probing: Promise<void> | undefined;

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
      log.info({ dir: journal.dir, inFlight: records.length, resumed: pending.length }, 'job journal loaded');
    })().catch((err: unknown) => {
      loading = undefined; // let the next call try again
      throw err;
    }));

  function markHealthy(): void {
    if (unhealthy === undefined) return;
    unhealthy = undefined;
    log.info('the job journal takes writes again');
    pump();
  }

  /** A journal write failed: unhealthy at once, and probe until the disk takes writes again. */
  function markUnhealthy(err: unknown): void {
    const reason = isAgentError(err) ? err.message : 'the job journal refuses writes';
    if (unhealthy === undefined) log.error({ err: { message: reason } }, 'job journal write failed: refusing new jobs until the disk takes writes again');
    unhealthy = reason;
    probing ??= (async () => {
      await new Promise((r) => setTimeout(r, retryMs).unref()); // the first probe after a pause, like a retry
      // A write that succeeds meanwhile marks the queue healthy too; the probe then ends at once.
      const ok = await retryUntilDone(() => (unhealthy === undefined ? Promise.resolve() : journal.probe()), { minMs: retryMs, maxMs: MAX_RETRY_MS, signal: giveUp.signal });
      if (ok) markHealthy();
    })().finally(() => (probing = undefined));
  }

  /** Write a record; a refusal marks the queue unhealthy and is rethrown. */
  async function write(record: JobRecord): Promise<void> {
    try {
      await journal.write(record);
      markHealthy();
    } catch (err) {
      markUnhealthy(err);
      throw err;
    }
  }

  async function writeQuietly(record: JobRecord, what: string): Promise<void> {
    try {
      await write(record);
    } catch (err) {
      log.error({ jobId: record.id, err: { message: (err as Error).message } }, `${what}; the journal is behind, so after a restart the job may run again`);
    }
  }

  /** Write until the disk takes it (or close() gives up); true when written. */
  const writeUntilDone = (record: JobRecord): Promise<boolean> =>
    retryUntilDone(() => write(record), { minMs: retryMs, maxMs: MAX_RETRY_MS, signal: giveUp.signal });

  /** Move a final job out of memory into the finished folder (it stays readable from there). */
  async function retire(id: string): Promise<void> {
    try {
      await journal.archive(id);
      jobs.delete(id);
    } catch (err) {
      // It stays in memory and in flight on disk; the next load moves it.
      log.warn({ jobId: id, err: { message: (err as Error).message } }, 'could not move a finished job record; the next start moves it');
    }
  }

  /** Deliver a final job's callback; on a definite outcome, drop the pending mark and retire the job. */
  function deliver(entry: Entry): void {
    const notify = opts.notify;
    if (!notify) return;
    const r = entry.record;
    const p: Promise<void> = notify(toView(r), giveUp.signal)
      .then(async (outcome) => {
        if (outcome === 'abandoned') return; // shutdown: it stays pending in the journal and resumes after a restart
        delete r.callback;
        try {
          await write(r);
        } catch (err) {
          // Still pending on disk: a restart sends it again (at least once). It stays in flight until then.
          log.error({ jobId: r.id, err: { message: (err as Error).message } }, 'could not journal a delivered callback; it is sent again after a restart');
          return;
        }
        await retire(r.id);
      })
      .catch((err: unknown) => log.error({ jobId: r.id, err: { message: (err as Error).message } }, 'callback bookkeeping failed'))
      .finally(() => delivering.delete(p));
    delivering.add(p);
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
    if (opts.notify) r.callback = 'pending';
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
    if (!(await writeUntilDone(final))) {
      jobLog.error('shutdown before the final state could be journaled: the job runs again after a restart');
      return;
    }
    Object.assign(r, final);
    delete r.submission;
    if (outcome.error) jobLog.error({ code: outcome.error.code }, 'job failed');
    if (r.callback !== 'pending') await retire(r.id);
    waiters.wake(r.id);
    if (r.callback === 'pending') deliver(entry);
  }

  function pump(): void {
    // Nothing starts while the journal refuses writes: its result could not be recorded.
    while (processor && !closing && unhealthy === undefined && running.size < concurrency && pending.length > 0) {
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

  /** Run `fn` after every earlier call for the same id has settled. */
  function withIdLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prior = idLocks.get(id) ?? Promise.resolve();
    const next = prior.then(fn, fn);
    const tail = next.catch(() => undefined);
    idLocks.set(id, tail);
    void tail.then(() => {
      if (idLocks.get(id) === tail) idLocks.delete(id);
    });
    return next;
  }

  /** A job's record: in memory while in flight, else from the finished folder. */
  async function find(id: string): Promise<JobRecord | undefined> {
    await load();
    const entry = jobs.get(id);
    if (entry) return entry.record;
    return isJobId(id) ? journal.readFinished(id) : undefined;
  }

  return {
    async submit(submission) {
      const id = makeJobId(submission);
      await load();
      return withIdLock(id, async () => {
        const existing = jobs.get(id);
        if (existing) {
          await existing.durable;
          const r = existing.record;
          assertSameRequest({ type: r.type, ...(r.submission && { identifiers: r.submission.identifiers, connections: r.submission.connections }) }, submission, id);
          return { job: toView(existing.record), created: false };
        }
        const finished = await journal.readFinished(id);
        if (finished) {
          assertSameRequest({ type: finished.type }, submission, id);
          return { job: toView(finished), created: false };
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
        const entry: Entry = { record, durable: write(record) };
        jobs.set(id, entry);
        try {
          await entry.durable;
        } catch (err) {
          jobs.delete(id);
          throw err; // QUEUE_UNAVAILABLE: nothing was accepted
        }
        pending.push(id);
        log.info({ jobId: id, type: record.type }, 'job accepted');
        pump();
        return { job: toView(record), created: true as boolean };
      });
    },

    async get(id) {
      const r = await find(id);
      return r ? toView(r) : undefined;
    },

    async waitFor(id, timeoutMs) {
      await load();
      const entry = jobs.get(id);
      if (!entry) {
        const r = await find(id); // finished (or unknown): nothing to wait for
        return r ? toView(r) : undefined;
      }
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
      // Callbacks a restart interrupted: deliver them again (at least once).
      for (const entry of jobs.values()) {
        if (isFinal(entry.record.status) && entry.record.callback === 'pending') {
          if (opts.notify) deliver(entry);
          else {
            delete entry.record.callback; // callbacks are no longer configured
            await writeQuietly(entry.record, 'could not journal a dropped callback');
            await retire(entry.record.id);
          }
        }
      }
      pump();
    },

    async depth() {
      await load();
      return pending.length;
    },

    async purge(cutoffMs) {
      await load();
      return (await journal.purgeFinished(cutoffMs)).length;
    },

    health(): QueueHealth {
      return unhealthy === undefined ? { ok: true } : { ok: false, code: ErrorCodes.QUEUE_UNAVAILABLE, reason: unhealthy };
    },

    async close(graceMs) {
      closing = true;
      waiters.wakeAll(); // long polls answer now with the current view
      const deadline = Date.now() + graceMs;
      try {
        if (running.size > 0) {
          const all = Promise.allSettled([...running.values()].map((r) => r.done));
          if (!(await settlesWithin(all, graceMs))) {
            log.warn({ running: running.size, graceMs }, 'shutdown grace period over: aborting running jobs and handing them back');
            const reason = new AgentError(ErrorCodes.CANCELLED, 'the agent is shutting down; the job goes back to the queue');
            for (const { entry } of running.values()) entry.controller?.abort(reason);
            giveUp.abort(); // final records the disk still refuses: the jobs stay in flight and run again
            if (!(await settlesWithin(all, abortSettleMs))) {
              // Processors that ignore their signal: hand their jobs back now and ignore what they return.
              const stuck = [...running.values()].filter(({ entry }) => entry.controller);
              log.error({ jobs: stuck.length }, 'running jobs ignored the abort signal; handing them back anyway');
              await Promise.all(
                stuck.map(({ entry }) => {
                  entry.detached = true;
                  return handBack(entry);
                }),
              );
            }
          }
        }
        // Callbacks in flight get what is left of the grace period; the rest stay pending and resume after a restart.
        if (delivering.size > 0 && !(await settlesWithin(Promise.allSettled([...delivering]), Math.max(0, deadline - Date.now())))) {
          log.warn({ callbacks: delivering.size }, 'shutdown grace period over: undelivered callbacks stay pending and resume after a restart');
        }
      } finally {
        giveUp.abort();
        await settlesWithin(Promise.allSettled([...delivering]), abortSettleMs);
      }
    },
  };
}
