/**
 * The Redis job queue (BullMQ): any replica accepts, runs and answers for any job. A replica killed
 * mid-job loses its lock after `lockMs`; BullMQ's stalled-job check on another replica moves the job
 * back to wait and it runs again (up to {@link MAX_STALLED_COUNT} takeovers).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Queue, QueueEvents, WaitingError, Worker } from 'bullmq';
import type { JobResult } from '../engine/index.js';
import { AgentError, ErrorCodes } from '../errors.js';
import type { Logger } from '../logger.js';
import { assertSameRequest, isFinal, isJobId, makeJobId, makeWaiters, settleOutcome, settlesWithin, type JobOutcome } from './common.js';
import { fromBullId, MAX_STALLED_COUNT, toBullId, toJobView, type StoredData, type StoredJob } from './redis-view.js';
import type { JobProcessor, JobQueue, JobSubmission, JobView } from './types.js';

/** Options for {@link makeRedisQueue}. */
export interface RedisQueueOptions {
  /** e.g. `redis://:password@redis.internal:6379/0` (rediss:// for TLS). */
  readonly redisUrl: string;
  /** BullMQ queue name (keys `bull:<name>:*`); default 'dsr-agent'. */
  readonly name?: string;
  /** Job lock duration: how long a crashed replica's job stays locked; default 30000 ms. */
  readonly lockMs?: number;
  readonly logger: Logger;
  /** After close() aborts running jobs, how long to wait for them before force-closing; default 5000 ms. */
  readonly abortSettleMs?: number;
}

const DEFAULT_LOCK_MS = 30 * 1000; // 30 s
const DEFAULT_ABORT_SETTLE_MS = 5 * 1000; // 5 s
const SAFETY_POLL_MS = 1000; // waitFor re-reads the job this often in case an event was missed
const OP_TIMEOUT_MS = 10 * 1000; // 10 s: an API call fails instead of hanging while Redis is down

function redisError(action: string, cause: unknown): unknown {
  if (cause instanceof AgentError) return cause;
  return new AgentError(ErrorCodes.INTERNAL, `could not ${action} in Redis (${(cause as Error)?.message ?? 'unknown error'}); check redis_url and that Redis is reachable`, { cause });
}

/** Run `op`, failing with an AgentError when it throws or takes longer than OP_TIMEOUT_MS. */
async function withRedis<T>(action: string, op: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${OP_TIMEOUT_MS / 1000} s`)), OP_TIMEOUT_MS);
  });
  try {
    return await Promise.race([op(), timeout]);
  } catch (err) {
    throw redisError(action, err);
  } finally {
    clearTimeout(timer);
  }
}

/** Make the Redis queue. It connects at once; close() disconnects. */
export function makeRedisQueue(opts: RedisQueueOptions): JobQueue {
  const name = opts.name ?? 'dsr-agent';
  const lockMs = opts.lockMs ?? DEFAULT_LOCK_MS;
  const abortSettleMs = opts.abortSettleMs ?? DEFAULT_ABORT_SETTLE_MS;
  const log = opts.logger.child({ queue: 'redis', name });
  const connection = { url: opts.redisUrl };
  const queue = new Queue<StoredData, JobOutcome>(name, { connection });
  queue.on('error', (err) => log.error({ err: { message: err.message } }, 'Redis queue connection error'));
  let events: QueueEvents | undefined;
  let worker: Worker<StoredData, JobOutcome> | undefined;
  let closing = false;
  const active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  const waiters = makeWaiters();
  const stripping = new Set<Promise<void>>();

  /** Data minimisation: a final job keeps its type and nonce, not the identifiers. */
  function strip(job: StoredJob): Promise<void> {
    if (!job.data.identifiers) return Promise.resolve();
    const { identifiers: _dropped, ...rest } = job.data;
    const p = job
      .updateData(rest)
      .catch((err: unknown) => log.error({ jobId: job.id, err: { message: (err as Error).message } }, 'could not remove identifiers from a finished job; the next GET retries'))
      .finally(() => stripping.delete(p));
    stripping.add(p);
    return p;
  }

  /**
   * Read a job: its state first, then its hash. The hash is then at least as new as the state, so
   * a 'completed' state always comes with its return value.
   */
  async function load(bullId: string): Promise<{ job: StoredJob; view: JobView } | undefined> {
    const state = await queue.getJobState(bullId);
    if (state === 'unknown') return undefined;
    const job = (await queue.getJob(bullId)) as StoredJob | undefined;
    if (!job) return undefined;
    const view = toJobView(job, state);
    if (isFinal(view.status)) void strip(job); // normally done on completion; this repairs a replica crash in between
    return { job, view };
  }

  async function get(id: string): Promise<JobView | undefined> {
    if (!isJobId(id)) return undefined;
    return withRedis('read the job', async () => (await load(toBullId(id)))?.view);
  }

  function ensureEvents(): QueueEvents {
    if (!events) {
      events = new QueueEvents(name, { connection });
      events.on('error', (err) => log.error({ err: { message: err.message } }, 'Redis queue events connection error'));
      events.on('completed', ({ jobId }) => waiters.wake(jobId));
      events.on('failed', ({ jobId }) => waiters.wake(jobId));
    }
    return events;
  }

  async function handBack(job: StoredJob, token: string | undefined): Promise<never> {
    await job.moveToWait(token ?? '0');
    log.info({ jobId: job.id, attempt: job.attemptsStarted }, 'job handed back to the queue');
    throw new WaitingError(); // tells BullMQ the job has been moved, not failed
  }

  function makeBullProcessor(processor: JobProcessor) {
    return async (job: StoredJob, token?: string): Promise<JobOutcome> => {
      if (closing) return handBack(job, token); // fetched while this replica was shutting down
      const id = fromBullId(job.id as string);
      const { type, identifiers, connections } = job.data;
      if (!identifiers) {
        return { status: 'failed', connections: [], error: { code: ErrorCodes.INTERNAL, message: 'the job lost its identifiers before it ran; submit it again with a new id' } };
      }
      const controller = new AbortController();
      let markDone = () => {};
      active.set(id, { controller, done: new Promise<void>((resolve) => (markDone = resolve)) });
      const jobLog = log.child({ jobId: id, attempt: job.attemptsStarted });
      try {
        const submission: JobSubmission = { id, type, identifiers, ...(connections ? { connections } : {}) };
        let settled: { ok: true; result: JobResult } | { ok: false; error: unknown };
        try {
          settled = { ok: true, result: await processor({ id, submission, attempt: job.attemptsStarted }, controller.signal) };
        } catch (error) {
          settled = { ok: false, error };
          if (!controller.signal.aborted && !(error instanceof AgentError)) jobLog.debug({ err: error }, 'processor threw');
        }
        const outcome = settleOutcome(settled, controller.signal.aborted);
        if (!outcome) return await handBack(job, token);
        if (outcome.error) jobLog.error({ code: outcome.error.code }, 'job failed');
        return outcome;
      } finally {
        active.delete(id);
        markDone();
      }
    };
  }

  /** Wait until no processor of ours is running (new ones may start while we wait), up to `ms`. */
  async function drained(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (active.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0 || !(await settlesWithin(Promise.allSettled([...active.values()].map((a) => a.done)), left))) return false;
    }
    return true;
  }

  return {
    async submit(submission) {
      const id = makeJobId(submission);
      const bullId = toBullId(id);
      return withRedis('store the job', async () => {
        const existing = await load(bullId);
        if (existing) {
          assertSameRequest(existing.job.data, submission, id);
          return { job: existing.view, created: false };
        }
        const nonce = randomUUID();
        const data: StoredData = { type: submission.type, identifiers: { ...submission.identifiers }, nonce };
        if (submission.connections) data.connections = [...submission.connections];
        // jobId makes BullMQ ignore a second add of the same id (another replica racing us).
        await queue.add(submission.type, data, { jobId: bullId, attempts: 1, removeOnComplete: false, removeOnFail: false });
        const stored = await load(bullId);
        if (!stored) throw new Error('the job disappeared right after it was added');
        const created = stored.job.data.nonce === nonce;
        if (!created) assertSameRequest(stored.job.data, submission, id); // another replica's add won the race
        if (created) log.info({ jobId: id, type: submission.type }, 'job accepted');
        return { job: stored.view, created };
      });
    },

    get,

    async waitFor(id, timeoutMs) {
      let view = await get(id);
      if (!view || isFinal(view.status) || timeoutMs <= 0 || closing) return view;
      const deadline = Date.now() + timeoutMs;
      const ev = ensureEvents();
      await withRedis('subscribe to job events', () => ev.waitUntilReady());
      // Re-read after subscribing, then after each event (or every SAFETY_POLL_MS, in case the job
      // finished between our read and the subscription).
      while (!closing) {
        view = await get(id);
        const left = deadline - Date.now();
        if (!view || isFinal(view.status) || left <= 0) return view;
        await waiters.wait(toBullId(id), Math.min(left, SAFETY_POLL_MS)); // a completed/failed event, or the safety poll
      }
      return view; // closing: answer with what we have rather than read through a closing connection
    },

    async start(processor, concurrency) {
      if (closing) throw new AgentError(ErrorCodes.INTERNAL, 'the job queue is closed; make a new queue to process jobs again');
      if (worker) throw new AgentError(ErrorCodes.INTERNAL, 'the job queue is already started; call start() once');
      if (!Number.isInteger(concurrency) || concurrency < 1) throw new AgentError(ErrorCodes.BAD_REQUEST, `job concurrency must be a positive integer, got ${concurrency}`);
      worker = new Worker<StoredData, JobOutcome>(name, makeBullProcessor(processor), {
        connection,
        name: `${hostname()}:${process.pid}`,
        concurrency,
        lockDuration: lockMs,
        stalledInterval: lockMs,
        maxStalledCount: MAX_STALLED_COUNT,
      });
      worker.on('error', (err) => log.error({ err: { message: err.message } }, 'Redis worker error'));
      // Re-read through our Queue: its connection outlives the worker's in close().
      worker.on('completed', (job) => {
        const p: Promise<void> = queue
          .getJob(job.id as string)
          .then((j) => (j ? strip(j as StoredJob) : undefined))
          .catch((err: unknown) => log.error({ jobId: job.id, err: { message: (err as Error).message } }, 'could not re-read a finished job to remove its identifiers'))
          .finally(() => stripping.delete(p));
        stripping.add(p);
      });
      worker.on('stalled', (jobId) => log.warn({ jobId }, `job stalled (its replica died or lost the lock): back to wait, or failed after ${MAX_STALLED_COUNT} takeovers`));
      const started = worker;
      await withRedis('start the worker', () => started.waitUntilReady());
      log.info({ concurrency, lockMs }, 'job processing started');
    },

    async depth() {
      return withRedis('count queued jobs', () => queue.count());
    },

    async close(graceMs) {
      closing = true;
      waiters.wakeAll();
      if (worker) {
        await worker.pause(true); // stop fetching; running jobs go on
        let force = false;
        if (!(await drained(graceMs))) {
          log.warn({ running: active.size, graceMs }, 'shutdown grace period over: aborting running jobs and handing them back');
          const reason = new AgentError(ErrorCodes.CANCELLED, 'the agent is shutting down; the job goes back to the queue');
          for (const a of active.values()) a.controller.abort(reason);
          // Processors that ignore their signal keep their lock until we disconnect; the stalled
          // check then moves their jobs back to wait after lockMs.
          force = !(await drained(abortSettleMs));
          if (force) log.error({ jobs: active.size }, 'running jobs ignored the abort signal; they return to the queue via the stalled check');
        }
        await worker.close(force);
      }
      await Promise.allSettled([...stripping]);
      await events?.close();
      await queue.close();
    },
  };
}
