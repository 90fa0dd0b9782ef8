/**
 * The Redis job queue (BullMQ): any replica accepts, runs and answers for any job. A replica killed
 * mid-job loses its lock after `lockMs`; BullMQ's stalled-job check on another replica moves the job
 * back to wait and it runs again (up to {@link MAX_STALLED_COUNT} takeovers).
 *
 * A side connection (ioredis, no offline queue) tells the queue's health at once: while Redis does
 * not answer, every call fails within {@link OP_TIMEOUT_MS} with QUEUE_UNAVAILABLE (the API's 503)
 * instead of hanging. It also holds the pending callbacks (a sorted set): a job's callback is
 * recorded before the job completes, claimed by one replica at a time, and resumed by any replica
 * after a crash or a shutdown.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Queue, QueueEvents, WaitingError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { JobResult } from '../engine/index.js';
import { AgentError, ErrorCodes } from '../errors.js';
import type { Logger } from '../logger.js';
import { assertSameRequest, isFinal, isJobId, makeJobId, makeWaiters, retryUntilDone, settleOutcome, settlesWithin, type JobOutcome } from './common.js';
import { fromBullId, MAX_STALLED_COUNT, toBullId, toJobView, type StoredData, type StoredJob } from './redis-view.js';
import type { JobNotifier, JobProcessor, JobQueue, JobSubmission, JobView, QueueHealth } from './types.js';

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
  /** Delivers each final job (the result callback); pending deliveries survive a replica's crash or shutdown. */
  readonly notify?: JobNotifier;
  /** How long one claim on a pending callback lasts (the sender's retry window plus a margin), in ms. Default 660000. */
  readonly callbackClaimMs?: number;
  /** A pending callback older than this, in ms, is resumed by any replica (younger ones belong to the replica finishing the job). Default 5000. */
  readonly callbackOrphanMs?: number;
  /** Finished jobs are removed this long after they finish (BullMQ's removeOnComplete age, and {@link JobQueue.purge}); 0 keeps them. Default 0. */
  readonly retentionMs?: number;
}

const DEFAULT_LOCK_MS = 30 * 1000; // 30 s
const DEFAULT_ABORT_SETTLE_MS = 5 * 1000; // 5 s
const SAFETY_POLL_MS = 1000; // waitFor re-reads the job this often in case an event was missed
/** An API call fails (503) rather than hang longer than this while Redis does not answer. */
export const OP_TIMEOUT_MS = 1500;
const DEFAULT_CALLBACK_CLAIM_MS = 11 * 60 * 1000; // the sender's 10 min retry window + 1 min
/** How often each replica looks for callbacks nobody delivers (a replica died or shut down). */
const CALLBACK_RESUME_MS = 30 * 1000; // 30 s
const DEFAULT_CALLBACK_ORPHAN_MS = 5 * 1000; // 5 s
const PURGE_BATCH = 1000;
/** Delete a callback claim only when this replica holds it. */
const RELEASE_CLAIM = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

function redisError(action: string, cause: unknown): unknown {
  if (cause instanceof AgentError) return cause;
  return new AgentError(
    ErrorCodes.QUEUE_UNAVAILABLE,
    `could not ${action} in Redis (${(cause as Error)?.message ?? 'unknown error'}); check redis_url and that Redis is reachable, then retry`,
    { cause },
  );
}

/** Why Redis may lose accepted jobs, from CONFIG GET (or INFO when CONFIG is disabled); undefined when it persists them. */
async function persistenceGap(client: Redis): Promise<string | undefined> {
  let aof: boolean;
  let rdb: boolean | undefined;
  try {
    const [, appendonly] = (await client.config('GET', 'appendonly')) as string[];
    const [, save] = (await client.config('GET', 'save')) as string[];
    aof = appendonly === 'yes';
    rdb = (save ?? '').trim() !== '';
  } catch {
    const info = await client.info('persistence'); // managed Redis often disables CONFIG
    aof = /^aof_enabled:1/m.test(info);
  }
  if (aof) return undefined;
  if (rdb === true) return 'only RDB snapshots (appendonly no): jobs accepted since the last snapshot are lost if Redis restarts';
  if (rdb === false) return 'no persistence (appendonly no, save ""): every queued and finished job is lost if Redis restarts';
  return 'appendonly is off and the snapshot schedule is unknown (CONFIG is disabled): jobs may be lost if Redis restarts';
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
  const delivering = new Set<Promise<void>>();
  const replicaId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const retentionMs = opts.retentionMs ?? 0;
  const claimMs = opts.callbackClaimMs ?? DEFAULT_CALLBACK_CLAIM_MS;
  const orphanMs = opts.callbackOrphanMs ?? DEFAULT_CALLBACK_ORPHAN_MS;
  const pendingKey = queue.toKey('dsr:callbacks');
  const claimKey = (bullId: string) => queue.toKey(`dsr:callback-claim:${bullId}`);
  let resumeTimer: NodeJS.Timeout | undefined;
  /** Callbacks this replica is delivering (by BullMQ id). */
  const inDelivery = new Set<string>();
  /** Aborted when close() gives up on callbacks in flight: they are released for another replica or a restart. */
  const stopDelivering = new AbortController();
  /** Aborted when close() begins: a pending callback Redis does not take by then is not waited for. */
  const stopRecording = new AbortController();

  // The side connection: health at a glance, fail-fast commands (no offline queue), callbacks' bookkeeping.
  let failure: string | undefined = 'connecting to Redis';
  const side = new Redis(opts.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: OP_TIMEOUT_MS, lazyConnect: false });
  let recovering: Promise<void> | undefined;
  const down = (reason: string) => {
    if (closing) return;
    if (failure === undefined) log.error({ reason }, 'Redis is not answering: the API answers 503 and /readyz is unready until it does');
    failure = reason;
    // A hung server keeps the socket 'ready': ping until it answers (a reconnect's 'ready' also clears it).
    recovering ??= (async () => {
      while (failure !== undefined && !closing) {
        await new Promise((r) => setTimeout(r, 500).unref());
        if (side.status !== 'ready') continue;
        try {
          await Promise.race([side.ping(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), OP_TIMEOUT_MS).unref())]);
          log.info('Redis answers again');
          failure = undefined;
        } catch {
          // still not answering
        }
      }
    })().finally(() => (recovering = undefined));
  };
  let everReady = false;
  const firstReady = new Promise<void>((resolve) => side.once('ready', () => ((everReady = true), resolve())));
  side.on('ready', () => {
    if (failure !== undefined && failure !== 'connecting to Redis') log.info('Redis answers again');
    failure = undefined;
  });
  side.on('error', (err: NodeJS.ErrnoException) => down(`connection error (${err.code ?? 'unknown'})`));
  side.on('close', () => down('connection closed'));
  side.on('reconnecting', () => down('reconnecting'));
  side.once('ready', () => {
    void persistenceGap(side).then(
      (gap) =>
        gap
          ? log.warn({ gap }, `Redis keeps ${gap}; enable appendonly yes (AOF) so that accepted jobs survive a Redis restart`)
          : log.info('Redis persists accepted jobs (appendonly yes)'),
      (err: unknown) => log.warn({ err: { message: (err as Error).message } }, 'could not read Redis persistence settings; make sure appendonly is yes'),
    );
  });

  /** Run `op` against Redis: at once QUEUE_UNAVAILABLE while Redis does not answer, and within OP_TIMEOUT_MS at worst. */
  async function withRedis<T>(action: string, op: () => Promise<T>): Promise<T> {
    if (failure !== undefined && everReady) throw redisError(action, new Error(failure));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Error(`no answer within ${OP_TIMEOUT_MS} ms`);
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timedOut), OP_TIMEOUT_MS);
    });
    try {
      if (!everReady) await Promise.race([firstReady, timeout]); // the first connection: wait for it, within the same bound
      return await Promise.race([op(), timeout]);
    } catch (err) {
      if (!(err instanceof AgentError) && (err === timedOut || side.status !== 'ready')) down(err === timedOut ? `no answer within ${OP_TIMEOUT_MS} ms` : 'a command failed');
      throw redisError(action, err);
    } finally {
      clearTimeout(timer);
    }
  }

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

  /**
   * Deliver a final job's callback if no replica holds its claim. A definite outcome removes it from
   * the pending set; 'abandoned' (shutdown) releases the claim so another replica resumes it.
   */
  function deliver(bullId: string): void {
    const notify = opts.notify;
    if (!notify || closing || inDelivery.has(bullId)) return;
    inDelivery.add(bullId);
    const p: Promise<void> = (async () => {
      if ((await side.set(claimKey(bullId), replicaId, 'PX', claimMs, 'NX')) !== 'OK') return; // another replica delivers it
      try {
        const loaded = await load(bullId);
        if (!loaded) {
          await side.zrem(pendingKey, bullId); // purged meanwhile: nothing to deliver
          return;
        }
        if (!isFinal(loaded.view.status)) return; // a replica died before completing it; its next run records the callback again
        const outcome = await notify(loaded.view, stopDelivering.signal);
        if (outcome !== 'abandoned') await side.zrem(pendingKey, bullId);
      } finally {
        await side.eval(RELEASE_CLAIM, 1, claimKey(bullId), replicaId);
      }
    })()
      .catch((err: unknown) => log.warn({ jobId: fromBullId(bullId), err: { message: (err as Error).message } }, 'callback bookkeeping failed; it stays pending and is resumed'))
      .finally(() => {
        inDelivery.delete(bullId);
        delivering.delete(p);
      });
    delivering.add(p);
  }

  /** Deliver callbacks nobody is delivering: their replica died or shut down. */
  async function resumeCallbacks(): Promise<void> {
    if (!opts.notify || closing || failure !== undefined) return;
    try {
      const ids = await side.zrangebyscore(pendingKey, '-inf', Date.now() - orphanMs, 'LIMIT', 0, 100);
      for (const id of ids) deliver(id);
    } catch (err) {
      log.warn({ err: { message: (err as Error).message } }, 'could not list pending callbacks; the next round tries again');
    }
  }

  /** Record a job's callback as pending before the job completes; retried until Redis takes it (or shutdown). */
  async function recordCallback(bullId: string): Promise<void> {
    const record = () => withRedis('record a pending callback', () => side.zadd(pendingKey, Date.now(), bullId));
    if (!(await retryUntilDone(record, { minMs: 250, maxMs: 5000, signal: stopRecording.signal }))) {
      throw new AgentError(ErrorCodes.QUEUE_UNAVAILABLE, 'shutdown before the pending callback could be recorded in Redis; the job runs again on another replica');
    }
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
        // Pending before final: a replica that dies right after completing leaves the callback for another.
        if (opts.notify) await recordCallback(job.id as string);
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
        const keep = retentionMs > 0 ? { age: Math.ceil(retentionMs / 1000) } : false;
        await queue.add(submission.type, data, { jobId: bullId, attempts: 1, removeOnComplete: keep, removeOnFail: keep });
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
          .then(() => deliver(job.id as string))
          .catch((err: unknown) => log.error({ jobId: job.id, err: { message: (err as Error).message } }, 'could not re-read a finished job to remove its identifiers'))
          .finally(() => stripping.delete(p));
        stripping.add(p);
      });
      worker.on('stalled', (jobId) => log.warn({ jobId }, `job stalled (its replica died or lost the lock): back to wait, or failed after ${MAX_STALLED_COUNT} takeovers`));
      const started = worker;
      await withRedis('start the worker', () => started.waitUntilReady());
      log.info({ concurrency, lockMs }, 'job processing started');
      if (opts.notify) {
        void resumeCallbacks();
        resumeTimer = setInterval(() => void resumeCallbacks(), CALLBACK_RESUME_MS);
        resumeTimer.unref();
      }
    },

    async depth() {
      return withRedis('count queued jobs', () => queue.count());
    },

    async purge(cutoffMs) {
      const grace = Math.max(0, Date.now() - cutoffMs);
      let total = 0;
      for (const state of ['completed', 'failed'] as const) {
        for (;;) {
          const ids = await withRedis('purge finished jobs', () => queue.clean(grace, PURGE_BATCH, state));
          total += ids.length;
          if (ids.length < PURGE_BATCH) break;
        }
      }
      return total;
    },

    health(): QueueHealth {
      return failure === undefined ? { ok: true } : { ok: false, code: ErrorCodes.QUEUE_UNAVAILABLE, reason: `Redis: ${failure}` };
    },

    async close(graceMs) {
      closing = true;
      stopRecording.abort();
      if (resumeTimer) clearInterval(resumeTimer);
      const deadline = Date.now() + graceMs;
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
      // Callbacks in flight get what is left of the grace period; the rest are released for another replica or a restart.
      if (delivering.size > 0 && !(await settlesWithin(Promise.allSettled([...delivering]), Math.max(0, deadline - Date.now())))) {
        log.warn({ callbacks: delivering.size }, 'shutdown grace period over: undelivered callbacks stay pending for another replica or a restart');
      }
      stopDelivering.abort();
      await settlesWithin(Promise.allSettled([...delivering]), abortSettleMs); // they release their claims
      await events?.close();
      await queue.close();
      await side.quit().catch(() => side.disconnect()); // quit lets the socket close at once (disconnect keeps a 2 s timer)
    },
  };
}
