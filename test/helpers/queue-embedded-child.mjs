// Child for test/queue.embedded-crash.test.ts: submits JOB_IDS to an embedded queue on DATA_DIR
// (printing "submitted <id>" once each submit resolved), then processes them with a processor that
// prints "start <id> <attempt>" and hangs, until the parent kills this process.
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { makeJobQueue } from '../../dist/queue/index.js';

const out = (line) => process.stdout.write(`${line}\n`);
const queue = makeJobQueue({ dataDir: process.env.DATA_DIR, logger: pino({ level: 'silent' }) });
for (const id of process.env.JOB_IDS.split(',')) {
  await queue.submit({ id, type: 'access', identifiers: { email: `${id}@example.com` } });
  out(`submitted ${id}`);
}
await queue.start(async (job, signal) => {
  out(`start ${job.id} ${job.attempt}`);
  await sleep(60_000, undefined, { signal });
  throw new Error('the parent should have killed this process by now');
}, 1);
out('ready');
