import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { makeJobQueue } from '../src/queue/index.js';
import type { JobQueue } from '../src/queue/types.js';
import { assertBuilt, spawnLineChild, type LineChild } from './helpers/queue.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const NAME = `dsr-test-${process.pid}-${Date.now()}-failover`;
const LOCK_MS = 1000;
const WORK_MS = 3000;

let redis: Redis;
let replicas: LineChild[] = [];
let client: JobQueue | undefined;

beforeAll(() => {
  assertBuilt();
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  await Promise.all(replicas.map((r) => r.kill()));
  await client?.close(0);
  const q = new Queue(NAME, { connection: { url: REDIS_URL } });
  await q.obliterate({ force: true });
  await q.close();
  expect(await redis.keys(`bull:${NAME}:*`)).toEqual([]);
  redis.disconnect();
});

describe('redis queue: a replica killed mid-job', () => {
  it('another replica takes the job over after the lock expires and records its result once', async () => {
    const env = { REDIS_URL, QUEUE_NAME: NAME, LOCK_MS: String(LOCK_MS), WORK_MS: String(WORK_MS) };
    replicas = [spawnLineChild('queue-redis-worker.mjs', env), spawnLineChild('queue-redis-worker.mjs', env)];
    await Promise.all(replicas.map((r) => r.waitForLine(/^ready$/)));

    client = makeJobQueue({ redisUrl: REDIS_URL, dataDir: '/nonexistent', name: NAME, lockMs: LOCK_MS, logger: pino({ level: 'silent' }) });
    await client.submit({ id: 'failover', type: 'delete', identifiers: { email: 'michael.bolton@initech.example' } });
    const first = await Promise.any(replicas.map((r) => r.waitForLine(/^start failover /)));
    const victimPid = Number(first.split(' ')[2]);
    const victim = replicas.find((r) => r.child.pid === victimPid)!;
    const survivor = replicas.find((r) => r !== victim)!;
    await victim.kill();

    // The takeover is the event: a job still locked by the dead replica would still be running when waitFor gives up.
    const view = await client.waitFor('failover', 15_000);
    expect(view).toMatchObject({ id: 'failover', type: 'delete', status: 'succeeded' });
    expect(view?.connections).toEqual([{ uuid: String(survivor.child.pid), name: `replica ${survivor.child.pid}`, status: 'succeeded' }]);
    expect(victim.lines.filter((l) => l.startsWith('start failover'))).toEqual([`start failover ${victimPid} 1`]);
    expect(victim.lines.filter((l) => l.startsWith('done'))).toEqual([]);
    expect(survivor.lines.filter((l) => l.startsWith('start failover'))).toEqual([`start failover ${survivor.child.pid} 2`]);
    expect(survivor.lines.filter((l) => l.startsWith('done failover'))).toHaveLength(1);
    // Recorded once: one 'completed' event in the queue's event stream.
    const events = await redis.xrange(`bull:${NAME}:events`, '-', '+');
    const completed = events.filter(([, fields]) => fields.includes('completed') && fields.includes('job-failover'));
    expect(completed).toHaveLength(1);
  }, 25_000);
});
