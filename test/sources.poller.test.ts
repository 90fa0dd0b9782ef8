/**
 * A polling round against a fake Dastra: each eligible request becomes its jobs once, its outcome
 * is written back once when they are final, across rounds, a restart, and two replicas on Redis.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { makeJobQueue, type JobQueue } from '../src/queue/index.js';
import type { JobResult } from '../src/engine/index.js';
import { makeDastraSource } from '../src/sources/dastra.js';
import { makeFileLedger, makeRedisLedger, sourceJobId, type SourceLedger } from '../src/sources/ledger.js';
import { makePoller } from '../src/sources/poller.js';
import { captureLogs } from './helpers/agent.js';
import { startDastraFake, type DastraFake } from './helpers/fakes/dastra.js';

const FAST = { retries: 3, minDelayMs: 5, maxDelayMs: 20 };
const logs = captureLogs('INFO');
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function result(type: JobResult['type']): JobResult {
  return { type, status: 'succeeded', connections: [{ uuid: '00000000-0000-4000-8000-000000000001', name: 'CRM', status: 'succeeded', reports: ['a', 'b'], report_count: 1500, reports_truncated: true }] };
}

async function fake(): Promise<DastraFake> {
  const f = await startDastraFake();
  cleanups.push(() => f.close());
  return f;
}

/** A queue whose processor counts the jobs it runs. */
async function queueWithProcessor(q: JobQueue, runs: string[]): Promise<JobQueue> {
  await q.start(async (job) => {
    runs.push(job.id);
    return result(job.submission.type);
  }, 2);
  return q;
}

function poller(f: DastraFake, queue: JobQueue, ledger: SourceLedger) {
  const source = makeDastraSource({ name: 'dastra', baseUrl: f.url, workspaceId: f.workspaceId, headers: { Authorization: f.authorization }, retry: FAST, stateWhenDone: 'Closed' });
  return makePoller({ source, queue, ledger, storage: 's3://reports/dsr', logger: logs.logger });
}

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('request source polling (embedded queue)', () => {
  it('runs each purpose once, reports attention once, writes back once when final, and survives a restart', async () => {
    const f = await fake();
    const a = f.addRequest({ email: 'peter@initech.example', purposes: ['Access', 'Erasure'], identityValidated: true, state: 'Open' });
    const b = f.addRequest({ email: '', phoneNumber: '', userId: '', purposes: ['Access'], identityValidated: true, state: 'Open' });
    f.addRequest({ email: 'samir@initech.example', purposes: ['Access'], identityValidated: false, state: 'Open' });
    const dir = mkdtempSync(join(tmpdir(), 'dsr-poll-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const runs: string[] = [];
    let queue = await queueWithProcessor(makeJobQueue({ dataDir: dir, logger: logs.logger }), runs);

    const first = await poller(f, queue, makeFileLedger(dir)).pollOnce(new AbortController().signal);
    expect(first).toMatchObject({ listed: 2, taken: 2, written_back: 1, waiting: 1 }); // b's attention note; a's jobs running
    const ids = [sourceJobId('dastra', String(a.id), 'access'), sourceJobId('dastra', String(a.id), 'delete')];
    await until('both jobs final', async () => (await Promise.all(ids.map((id) => queue.get(id)))).every((v) => v?.status === 'succeeded'));

    const second = await poller(f, queue, makeFileLedger(dir)).pollOnce(new AbortController().signal);
    expect(second).toMatchObject({ taken: 0, written_back: 1, skipped: 1 });
    expect(f.request(a.id)!.state).toBe('Closed');
    expect(String(f.request(b.id)!.resolutionMessage)).toMatch(/identifier/i);
    expect(String(f.request(a.id)!.resolutionMessage)).not.toContain('peter@initech.example');
    expect(String(f.request(a.id)!.resolutionMessage)).toContain('CRM succeeded (1500 reports)'); // the count, not the listed locations

    // A restart: a new queue on the same journal, a new ledger on the same folder.
    await queue.close(1000);
    queue = await queueWithProcessor(makeJobQueue({ dataDir: dir, logger: logs.logger }), runs);
    cleanups.push(() => queue.close(1000));
    f.request(a.id)!.state = 'Open'; // an operator reopened it: still written back already, left alone
    const third = await poller(f, queue, makeFileLedger(dir)).pollOnce(new AbortController().signal);
    expect(third).toMatchObject({ taken: 0, written_back: 0 });
    expect(runs.sort()).toEqual([...ids].sort());
    expect(f.count('update')).toBe(2);
    expect(logs.lines().join('\n')).not.toContain('@initech.example');
  });
});

describe('request source polling (two replicas on Redis)', () => {
  it('runs every request once and writes each back once, whichever replica sees it', async () => {
    const f = await fake();
    for (let i = 0; i < 12; i++) f.addRequest({ email: `person${i}@initech.example`, purposes: ['Access'], identityValidated: true, state: 'Open' });
    const name = `dsr-src-test-${process.pid}-${Date.now()}`;
    const redis = new Redis('redis://127.0.0.1:6379');
    const runs: string[] = [];
    const replicas = await Promise.all(
      [0, 1].map(async () => queueWithProcessor(makeJobQueue({ redisUrl: 'redis://127.0.0.1:6379', dataDir: '/nonexistent', logger: logs.logger, name, lockMs: 2000 }), runs)),
    );
    cleanups.push(async () => {
      await Promise.all(replicas.map((q) => q.close(0)));
      const q = new Queue(name, { connection: { url: 'redis://127.0.0.1:6379' } });
      await q.obliterate({ force: true });
      await q.close();
      const keys = await redis.keys(`${name}:ledger:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    });
    const pollers = replicas.map((q) => poller(f, q, makeRedisLedger(redis, `${name}:ledger`)));
    await until('every request written back', async () => {
      await Promise.all(pollers.map((p) => p.pollOnce(new AbortController().signal)));
      return f.count('update') >= 12 && runs.length >= 12;
    });
    // One more round on both: nothing runs or is written again.
    await Promise.all(pollers.map((p) => p.pollOnce(new AbortController().signal)));
    expect(runs.length).toBe(12);
    expect(new Set(runs).size).toBe(12);
    expect(f.count('update')).toBe(12);
    expect(logs.lines().join('\n')).not.toContain('@initech.example');
  });
});
