/**
 * The embedded queue when the disk refuses writes, with finished jobs out of memory, retention, and
 * durable callbacks. The disk fault is real: the journal's folder is swapped for a plain file, so every
 * write fails in the kernel (ENOTDIR) exactly as a full disk's do (ENOSPC); `npm run chaos` fills a
 * real 2 MiB tmpfs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAgentError } from '../src/errors.js';
import { makeEmbeddedQueue } from '../src/queue/embedded.js';
import type { JobNotifier, JobQueue, JobSubmission, JobView } from '../src/queue/types.js';
import { makeLocalStorage } from '../src/storage/local.js';
import { startRetention } from '../src/server/retention.js';
import { captureLogs } from './helpers/agent.js';
import { deferred, result } from './helpers/queue.js';

const EMAIL = 'milton.waddams@initech.example';
const sub = (id: string, type: JobSubmission['type'] = 'access'): JobSubmission => ({ id, type, identifiers: { email: EMAIL } });
const logs = captureLogs('INFO');

let root: string;
let n = 0;
const open: JobQueue[] = [];
const freshDir = () => join(root, `case-${++n}`);
const jobsDir = (dataDir: string) => join(dataDir, 'jobs');
const finishedFile = (dataDir: string, id: string) => join(dataDir, 'jobs', 'finished', `${id}.json`);
const inFlightFile = (dataDir: string, id: string) => join(dataDir, 'jobs', `${id}.json`);

function queueOn(dataDir: string, extra: { notify?: JobNotifier } = {}): JobQueue {
  const q = makeEmbeddedQueue({ dataDir, logger: logs.logger, retryMs: 20, abortSettleMs: 200, ...extra });
  open.push(q);
  return q;
}

/** Make every journal write fail: the folder moves away and a plain file takes its name. */
async function breakDisk(dataDir: string): Promise<() => Promise<void>> {
  await rename(jobsDir(dataDir), `${jobsDir(dataDir)}.away`);
  await writeFile(jobsDir(dataDir), 'not a folder');
  return async () => {
    await rm(jobsDir(dataDir));
    await rename(`${jobsDir(dataDir)}.away`, jobsDir(dataDir));
  };
}

/** Resolve once `check()` is true; fail with `what` after 10 s. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'queue-durability-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((q) => q.close(0)));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  expect(logs.lines().join('\n')).not.toContain(EMAIL);
});

describe('embedded queue: a disk that refuses writes', () => {
  it('refuses a job it cannot journal (QUEUE_UNAVAILABLE), turns unhealthy at once, and recovers by itself', async () => {
    const dir = freshDir();
    const q = queueOn(dir);
    await q.submit(sub('before'));
    expect(q.health()).toEqual({ ok: true });
    const repair = await breakDisk(dir);
    const err = await q.submit(sub('during')).catch((e: unknown) => e);
    expect(isAgentError(err, 'QUEUE_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toMatch(/DSR_AGENT_DATA_DIR.*writable and not full/);
    expect(q.health()).toMatchObject({ ok: false, code: 'QUEUE_UNAVAILABLE' });
    expect(await q.get('during')).toBeUndefined(); // nothing half-accepted
    await repair();
    await until(() => q.health().ok, 'the probe sees the disk take writes again'); // no request needed
    expect((await q.submit(sub('after'))).created).toBe(true);
  });

  it('journals a final state before anyone sees it, retrying until the disk takes it; starts nothing meanwhile', async () => {
    const dir = freshDir();
    const q = queueOn(dir);
    const release = deferred();
    const started: string[] = [];
    await q.start(async (job) => {
      started.push(job.id);
      if (job.id === 'first') await release.promise;
      return result();
    }, 1);
    await q.submit(sub('first'));
    await q.submit(sub('second'));
    await until(() => started.includes('first'), 'the first job runs');
    const repair = await breakDisk(dir);
    release.resolve();
    await until(() => !q.health().ok, 'the final write fails');
    expect((await q.get('first'))?.status).toBe('running'); // not shown as final: the disk does not have it
    expect(started).toEqual(['first']); // the second waits: its result could not be recorded either
    await repair();
    expect((await q.waitFor('first', 10_000))?.status).toBe('succeeded');
    expect(JSON.parse(readFileSync(finishedFile(dir, 'first'), 'utf8'))).toMatchObject({ status: 'succeeded' });
    expect((await q.waitFor('second', 10_000))?.status).toBe('succeeded');
    expect(q.health().ok).toBe(true);
  });
});

describe('embedded queue: finished jobs', () => {
  it('reads finished jobs from disk on demand: a restart loads only the jobs in flight', async () => {
    const dir = freshDir();
    const q = queueOn(dir);
    await q.start(async () => result(), 2);
    for (let i = 0; i < 20; i++) await q.submit(sub(`done-${i}`));
    for (let i = 0; i < 20; i++) expect((await q.waitFor(`done-${i}`, 5000))?.status).toBe('succeeded');
    await q.close(1000);
    expect((await readdir(jobsDir(dir))).filter((f) => f.endsWith('.json'))).toEqual([]);
    // A finished job in the in-flight folder (a crash between the final write and the move) is moved on load.
    await rename(finishedFile(dir, 'done-0'), inFlightFile(dir, 'done-0'));

    const mark = logs.lines().length;
    const again = queueOn(dir);
    await again.submit(sub('new-one'));
    const loaded = logs.lines().slice(mark).map((l) => JSON.parse(l)).find((l) => l.msg === 'job journal loaded');
    expect(loaded).toMatchObject({ inFlight: 0, resumed: 0 });
    expect(existsSync(finishedFile(dir, 'done-0'))).toBe(true);
    expect(await again.get('done-7')).toMatchObject({ id: 'done-7', status: 'succeeded' });
    expect(await again.waitFor('done-8', 1000)).toMatchObject({ status: 'succeeded' });
    // Idempotency holds for finished ids: the same request is the same job, another type is a conflict.
    expect(await again.submit(sub('done-3'))).toMatchObject({ created: false, job: { status: 'succeeded' } });
    const conflict = await again.submit(sub('done-3', 'delete')).catch((e: unknown) => e);
    expect(isAgentError(conflict, 'JOB_CONFLICT')).toBe(true);
  });

  it('purges finished jobs past the retention and their Local reports, never a job in flight', async () => {
    const dir = freshDir();
    const q = queueOn(dir);
    const gate = deferred();
    await q.start(async (job) => {
      if (job.id === 'in-flight') await gate.promise;
      return result();
    }, 2);
    await q.submit(sub('old'));
    await q.submit(sub('recent'));
    await q.waitFor('old', 5000);
    await q.waitFor('recent', 5000);
    await q.submit(sub('in-flight'));
    const reports = join(dir, 'reports');
    for (const id of ['old', 'recent']) {
      await mkdir(join(reports, id, 'conn'), { recursive: true });
      await writeFile(join(reports, id, 'conn', 'report_1.csv'), 'email\nx\n');
    }
    const longAgo = new Date(Date.now() - 40 * 24 * 3600 * 1000);
    await utimes(finishedFile(dir, 'old'), longAgo, longAgo);
    await utimes(join(reports, 'old'), longAgo, longAgo);
    await utimes(inFlightFile(dir, 'in-flight'), longAgo, longAgo);

    const retention = startRetention({ queue: q, storage: makeLocalStorage({ directory: reports }), retentionDays: 30, logger: logs.logger });
    const purged = await retention.purgeNow();
    retention.stop();
    expect(purged).toEqual({ jobs: 1, reports: 1 });
    expect(await q.get('old')).toBeUndefined();
    expect(existsSync(join(reports, 'old'))).toBe(false);
    expect(await q.get('recent')).toMatchObject({ status: 'succeeded' });
    expect(existsSync(join(reports, 'recent', 'conn', 'report_1.csv'))).toBe(true);
    expect(await q.get('in-flight')).toMatchObject({ status: 'running' });
    gate.resolve();
    expect((await q.waitFor('in-flight', 5000))?.status).toBe('succeeded');
  });

  it('retention_days 0 keeps everything', async () => {
    const retention = startRetention({
      queue: { purge: async () => Promise.reject(new Error('must not be called')) },
      storage: {},
      retentionDays: 0,
      logger: logs.logger,
    });
    expect(await retention.purgeNow()).toEqual({ jobs: 0, reports: 0 });
    retention.stop();
  });
});

describe('embedded queue: durable callbacks', () => {
  it('calls back only once the final state is journaled, and keeps the job pending until delivered', async () => {
    const dir = freshDir();
    const seen: Array<{ view: JobView; onDisk: unknown }> = [];
    const q = queueOn(dir, {
      notify: async (view) => {
        seen.push({ view, onDisk: JSON.parse(readFileSync(inFlightFile(dir, view.id), 'utf8')) });
        return 'delivered';
      },
    });
    await q.start(async () => result(), 1);
    await q.submit(sub('cb-1'));
    await until(() => existsSync(finishedFile(dir, 'cb-1')), 'the delivered job is archived');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.view).toMatchObject({ id: 'cb-1', status: 'succeeded' });
    expect(seen[0]!.onDisk).toMatchObject({ status: 'succeeded', callback: 'pending' });
    expect(JSON.parse(readFileSync(finishedFile(dir, 'cb-1'), 'utf8')).callback).toBeUndefined();
  });

  it('a callback interrupted by shutdown stays pending and is delivered after a restart', async () => {
    const dir = freshDir();
    const attempts: string[] = [];
    const first = queueOn(dir, {
      notify: (view, signal) =>
        new Promise((resolve) => {
          attempts.push(`first:${view.id}`);
          signal.addEventListener('abort', () => resolve('abandoned'), { once: true }); // the receiver never answers
        }),
    });
    await first.start(async () => result(), 1);
    await first.submit(sub('cb-2'));
    await until(() => attempts.length === 1, 'the first attempt starts');
    await first.close(50); // grace over: abandoned
    expect(JSON.parse(readFileSync(inFlightFile(dir, 'cb-2'), 'utf8'))).toMatchObject({ status: 'succeeded', callback: 'pending' });

    const delivered = deferred<JobView>();
    const second = queueOn(dir, {
      notify: async (view) => {
        attempts.push(`second:${view.id}`);
        delivered.resolve(view);
        return 'delivered';
      },
    });
    expect(await second.get('cb-2')).toMatchObject({ status: 'succeeded' }); // readable while pending
    await second.start(async () => result(), 1);
    expect(await delivered.promise).toMatchObject({ id: 'cb-2', status: 'succeeded' });
    await until(() => existsSync(finishedFile(dir, 'cb-2')), 'the delivered job is archived');
    expect(attempts).toEqual(['first:cb-2', 'second:cb-2']); // the job itself did not run again
  });

  it('drains a callback in flight within the grace period on close', async () => {
    const dir = freshDir();
    const receiverAnswers = deferred();
    const q = queueOn(dir, {
      notify: async () => {
        await receiverAnswers.promise;
        return 'delivered';
      },
    });
    await q.start(async () => result(), 1);
    await q.submit(sub('cb-3'));
    await until(async () => (await q.get('cb-3'))?.status === 'succeeded', 'the job is final');
    const closed = q.close(10_000);
    receiverAnswers.resolve();
    await closed;
    expect(existsSync(finishedFile(dir, 'cb-3'))).toBe(true);
    expect(JSON.parse(readFileSync(finishedFile(dir, 'cb-3'), 'utf8')).callback).toBeUndefined();
  });
});
