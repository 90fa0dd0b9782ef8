/** The job queue the service uses: embedded (journal on disk) by default, BullMQ when redis_url is set. */
import type { Logger } from '../logger.js';
import { makeEmbeddedQueue } from './embedded.js';
import { makeRedisQueue } from './redis.js';
import type { JobNotifier, JobQueue } from './types.js';

export type { JobNotifier, JobProcessor, JobQueue, JobState, JobSubmission, JobView, QueueHealth, QueuedJob } from './types.js';

/** Options for {@link makeJobQueue}. */
export interface QueueOptions {
  /** The config's redis_url. Without it: the embedded queue (one process only). */
  redisUrl?: string;
  /** Embedded journal folder: `<dataDir>/jobs` (0700, files 0600). */
  dataDir: string;
  logger: Logger;
  /** BullMQ queue name (Redis keys `bull:<name>:*`); default 'dsr-agent'. Redis only. */
  name?: string;
  /** How long a crashed replica's job stays locked before another replica takes it over; default 30000 ms. Redis only. */
  lockMs?: number;
  /** Delivers each final job (the result callback), durably. */
  notify?: JobNotifier;
  /** Finished jobs are kept this long; 0 keeps them. Redis sets it on each job at submit (the embedded queue purges on purge()). */
  retentionMs?: number;
}

/** Make the job queue: Redis (BullMQ) when `redisUrl` is set, else the embedded journal queue. */
export function makeJobQueue(opts: QueueOptions): JobQueue {
  if (opts.redisUrl) {
    return makeRedisQueue({ redisUrl: opts.redisUrl, logger: opts.logger, name: opts.name, lockMs: opts.lockMs, notify: opts.notify, retentionMs: opts.retentionMs });
  }
  return makeEmbeddedQueue({ dataDir: opts.dataDir, logger: opts.logger, notify: opts.notify });
}
