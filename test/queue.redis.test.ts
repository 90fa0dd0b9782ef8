import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { AgentError, isAgentError } from '../src/errors.js';
import { makeJobQueue } from '../src/queue/index.js';
import type { JobQueue, JobSubmission, QueuedJob } from '../src/queue/types.js';
import { captureLogs } from './helpers/agent.js';
import { deferred, result } from './helpers/queue.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const EMAIL = 'samir.nagheenanajar@initech.example';
const sub = (id?: string): JobSubmission => ({ ...(id ? { id } : {}), type: 'access', identifiers: { email: EMAIL } });
const logs = captureLogs('INFO');

let redis: Redis;
let name = '';
let n = 0;
const open: JobQueue[] = [];
/** A queue instance (one "replica") on this test's queue name. */
function replica(): JobQueue {
  const q = makeJobQueue({ redisUrl: REDIS_URL, dataDir: '/nonexistent', logger: logs.logger, name, lockMs: 2000 });
  open.push(q);
  return q;
}
const rawData = async (id: string) => JSON.parse((await redis.hget(`bull:${name}:job-${id}`, 'data')) ?? 'null');

beforeAll(() => {
  redis = new Redis(REDIS_URL);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((q) => q.close(0)));
  const q = new Queue(name, { connection: { url: REDIS_URL } });
  await q.obliterate({ force: true });
  await q.close();
  expect(await redis.keys(`bull:${name}:*`)).toEqual([]);
});
afterAll(async () => {
  redis.disconnect();
  expect(logs.lines().join('\n')).not.toContain(EMAIL);
});
const nextName = () => (name = `dsr-test-${process.pid}-${Date.now()}-${++n}`);

describe('redis queue', () => {
  it('refuses a client id reused for another request on any replica (JOB_CONFLICT), accepts the same request', async () => {
    nextName();
    const a = replica();
    const b = replica();
    await a.submit(sub('shared-1'));
    await expect(b.submit({ id: 'shared-1', type: 'access', identifiers: { email: 'other@initech.example' } })).rejects.toMatchObject({ code: 'JOB_CONFLICT' });
    await expect(b.submit({ id: 'shared-1', type: 'delete', identifiers: { email: EMAIL } })).rejects.toMatchObject({ code: 'JOB_CONFLICT' });
    expect(await b.submit(sub('shared-1'))).toMatchObject({ created: false });
  });

  it('deduplicates a client id across replicas, runs it once, and answers GET on another replica', async () => {
    nextName();
    const a = replica();
    const b = replica();
    const first = await a.submit(sub('4711')); // integer-like ids are fine (BullMQ refuses raw ones)
    const second = await b.submit(sub('4711'));
    expect(first).toMatchObject({ created: true, job: { id: '4711', status: 'queued' } });
    expect(second).toMatchObject({ created: false, job: { id: '4711', status: 'queued', created_at: first.job.created_at } });
    expect(await b.depth()).toBe(1);
    expect(await b.get('4711')).toMatchObject({ status: 'queued', connections: [] });

    const runs: QueuedJob[] = [];
    await a.start(async (job) => {
      runs.push(job);
      return result('svc-a');
    }, 2);
    const view = await b.waitFor('4711', 5000);
    expect(view).toMatchObject({ id: '4711', type: 'access', status: 'succeeded', connections: [{ name: 'svc-a', status: 'succeeded' }] });
    expect(view?.started_at).toBeDefined();
    expect(view?.finished_at).toBeDefined();
    expect(await b.submit(sub('4711'))).toMatchObject({ created: false, job: { status: 'succeeded' } });
    await sleep(200);
    expect(runs.map((r) => [r.id, r.attempt, r.submission.identifiers.email])).toEqual([['4711', 1, EMAIL]]);
    expect(await b.get('unknown')).toBeUndefined();
    expect(await b.waitFor('unknown', 1000)).toBeUndefined();
  });

  it('tells exactly one of two racing submits of the same id that it created the job', async () => {
    nextName();
    const replicas = [replica(), replica(), replica(), replica()];
    await Promise.all(replicas.map((r) => r.get('warm-up'))); // connected, so the submits really race
    const answers = await Promise.all(replicas.map((r) => r.submit(sub('race'))));
    expect(answers.filter((a) => a.created)).toHaveLength(1);
    expect(new Set(answers.map((a) => a.job.created_at)).size).toBe(1);
    expect(await replicas[0].depth()).toBe(1);
  });

  it('removes the identifiers from the stored job data once the job is final', async () => {
    nextName();
    const a = replica();
    await a.submit(sub('strip-me'));
    const key = `bull:${name}:job-strip-me`;
    expect((await rawData('strip-me')).identifiers).toEqual({ email: EMAIL }); // needed to run it
    await a.start(async () => result(), 1);
    // No get()/waitFor() here: the replica that ran the job strips it on completion.
    const deadline = Date.now() + 5000;
    while (((await redis.hget(key, 'finishedOn')) === null || (await rawData('strip-me')).identifiers) && Date.now() < deadline) await sleep(20);
    const data = await rawData('strip-me');
    expect(data).toMatchObject({ type: 'access' });
    expect(data.identifiers).toBeUndefined();
    expect(JSON.stringify(await redis.hgetall(key))).not.toContain(EMAIL);

    // A replica that died between completion and stripping: the next read repairs it.
    await redis.hset(key, 'data', JSON.stringify({ ...data, identifiers: { email: EMAIL } }));
    expect(await a.get('strip-me')).toMatchObject({ status: 'succeeded' });
    const repaired = Date.now() + 2000;
    while ((await rawData('strip-me')).identifiers && Date.now() < repaired) await sleep(20);
    expect((await rawData('strip-me')).identifiers).toBeUndefined();
  });

  it('rejects unsafe ids with BAD_REQUEST and gives a UUID when none is sent', async () => {
    nextName();
    const a = replica();
    const err = await a.submit(sub('a:b')).catch((e: unknown) => e);
    expect(isAgentError(err, 'BAD_REQUEST')).toBe(true);
    expect((await a.submit(sub())).job.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await a.get('a:b')).toBeUndefined();
  });

  it('records a throwing processor as failed: INTERNAL for a bug, the code of an AgentError', async () => {
    nextName();
    const a = replica();
    await a.start(async (job) => {
      if (job.id === 'bug') throw new TypeError(`cannot read ${EMAIL}`);
      throw new AgentError('CONNECTION_NOT_FOUND', 'no connection named "x"; use a name from the config');
    }, 2);
    await a.submit(sub('bug'));
    await a.submit(sub('unknown-connection'));
    const bug = await a.waitFor('bug', 5000);
    expect(bug).toMatchObject({ status: 'failed', connections: [], error: { code: 'INTERNAL' } });
    expect(bug?.error?.message).not.toContain(EMAIL);
    expect(await a.waitFor('unknown-connection', 5000)).toMatchObject({ status: 'failed', error: { code: 'CONNECTION_NOT_FOUND' } });
  });

  it('waitFor answers with the current view when the timeout comes first', async () => {
    nextName();
    const a = replica();
    await a.submit(sub('waits'));
    const t0 = performance.now();
    expect((await a.waitFor('waits', 300))?.status).toBe('queued');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it('close() hands a running job back to wait at once; another replica finishes it', async () => {
    nextName();
    const a = replica();
    const b = replica();
    const started = deferred();
    await a.start(async (_job, signal) => {
      started.resolve();
      await sleep(60_000, undefined, { signal });
      return result('never');
    }, 1);
    await b.submit(sub('handed-back'));
    await started.promise;
    expect((await b.get('handed-back'))?.status).toBe('running');
    await a.close(100);
    expect((await b.get('handed-back'))?.status).toBe('queued'); // moved back now, not after the 2 s lock
    expect(await b.depth()).toBe(1);

    const runs: QueuedJob[] = [];
    await b.start(async (job) => {
      runs.push(job);
      return result('b');
    }, 1);
    expect(await b.waitFor('handed-back', 5000)).toMatchObject({ status: 'succeeded', connections: [{ name: 'b' }] });
    expect(runs.map((r) => [r.id, r.attempt])).toEqual([['handed-back', 2]]);
  });
});
