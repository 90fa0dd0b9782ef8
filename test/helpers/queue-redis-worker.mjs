// Child for test/queue.redis-failover.test.ts: a replica processing the Redis queue QUEUE_NAME.
// Prints "ready", then per job "start <id> <pid> <attempt>" and, after WORK_MS, "done <id> <pid>".
// The result's single connection carries this process's pid, so the parent sees who finished it.
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { makeJobQueue } from '../../dist/queue/index.js';

const out = (line) => process.stdout.write(`${line}\n`);
const queue = makeJobQueue({
  redisUrl: process.env.REDIS_URL,
  dataDir: process.env.DATA_DIR ?? '/nonexistent',
  name: process.env.QUEUE_NAME,
  lockMs: Number(process.env.LOCK_MS),
  logger: pino({ level: 'silent' }),
});
await queue.start(async (job, signal) => {
  out(`start ${job.id} ${process.pid} ${job.attempt}`);
  await sleep(Number(process.env.WORK_MS), undefined, { signal });
  out(`done ${job.id} ${process.pid}`);
  return {
    type: job.submission.type,
    status: 'succeeded',
    connections: [{ uuid: String(process.pid), name: `replica ${process.pid}`, status: 'succeeded' }],
  };
}, 1);
process.once('SIGTERM', () => {
  queue.close(1000).then(() => process.exit(0), () => process.exit(1));
});
out('ready');
