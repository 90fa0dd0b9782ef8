/** The job queue the service uses: embedded (journal on disk) by default, BullMQ when redis_url is set. */
import type { Logger } from '../logger.js';
import { makeEmbeddedQueue } from './embedded.js';
import { makeRedisQueue } from './redis.js';
import type { JobQueue } from './types.js';

export type { JobProcessor, JobQueue, JobState, JobSubmission, JobView, QueuedJob } from './types.js';

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
}

/** Make the job queue: Redis (BullMQ) when `redisUrl` is set, else the embedded journal queue. */
export function makeJobQueue(opts: QueueOptions): JobQueue {
  if (opts.redisUrl) {
    return makeRedisQueue({ redisUrl: opts.redisUrl, logger: opts.logger, name: opts.name, lockMs: opts.lockMs });
  }
  return makeEmbeddedQueue({ dataDir: opts.dataDir, logger: opts.logger });
}
