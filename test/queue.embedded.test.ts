import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentError, isAgentError } from '../src/errors.js';
import { makeEmbeddedQueue } from '../src/queue/embedded.js';
import { makeJobQueue } from '../src/queue/index.js';
import type { JobQueue, JobSubmission, QueuedJob } from '../src/queue/types.js';
import { captureLogs } from './helpers/agent.js';
import { deferred, result } from './helpers/queue.js';

const EMAIL = 'peter.gibbons@initech.example';
const sub = (id?: string, email = EMAIL): JobSubmission => ({ ...(id ? { id } : {}), type: 'access', identifiers: { email } });

let root: string;
let n = 0;
const open: JobQueue[] = [];
const logs = captureLogs('INFO');
/** A fresh data dir, or the one given, with a queue tracked for closing. */
function queueOn(dataDir: string): JobQueue {
  const q = makeJobQueue({ dataDir, logger: logs.logger });
  open.push(q);
  return q;
}
const freshDir = () => join(root, `case-${++n}`);
const journalFile = (dataDir: string, id: string) => join(dataDir, 'jobs', `${id}.json`);
/** Where a finished job's record lives (moved out of the in-flight folder). */
const finishedFile = (dataDir: string, id: string) => join(dataDir, 'jobs', 'finished', `${id}.json`);
const readJournal = (dataDir: string, id: string) => JSON.parse(readFileSync(journalFile(dataDir, id), 'utf8'));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'queue-embedded-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((q) => q.close(0)));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  expect(logs.lines().join('\n')).not.toContain(EMAIL); // no identifier in any log line at INFO
});

describe('embedded queue: accepting jobs', () => {
  it('journals a job (0600 in a 0700 folder) before submit resolves', async () => {
    const dir = freshDir();
    const q = queueOn(dir);
    const { job, created } = await q.submit(sub('job-1'));
    expect(created).toBe(true);
    expect(job).toMatchObject({ id: 'job-1', type: 'access', status: 'queued', connections: [] });
    expect(existsSync(journalFile(dir, 'job-1'))).toBe(true);
    expect(readJournal(dir, 'job-1')).toMatchObject({ id: 'job-1', status: 'queued', attempt: 0, submission: { identifiers: { email: EMAIL } } });
    expect(statSync(journalFile(dir, 'job-1')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'jobs')).mode & 0o777).toBe(0o700);
    expect(await q.depth()).toBe(1);
    expect(JSON.stringify(await q.get('job-1'))).not.toContain(EMAIL);
  });

  it('gives a random UUID when no id is sent', async () => {
    const q = queueOn(freshDir());
    const { job } = await q.submit(sub());
    expect(job.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('rejects ids that are not safe file names with BAD_REQUEST', async () => {
    const q = queueOn(freshDir());
    for (const id of ['../escape', 'a/b', 'a b', '..', 'x'.repeat(129), 'ümlaut']) {
      const err = await q.submit(sub(id)).catch((e: unknown) => e);
      expect(isAgentError(err, 'BAD_REQUEST')).toBe(true);
    }
    expect((await q.submit(sub('A-z_0.9'))).created).toBe(true);
  });

  it('answers undefined for an unknown job', async () => {
    const q = queueOn(freshDir());
    expect(await q.get('nope')).toBeUndefined();
    expect(await q.waitFor('nope', 1000)).toBeUndefined();
  });
});

describe('embedded queue: running jobs', () => {
  it('runs a job to its final state, answers waitFor at once, and drops the identifiers from the journal', async () => {
    const dir = freshDir();
    const q = queueOn(dir);
    await q.start(async (job) => {
      expect(job.submission.identifiers.email).toBe(EMAIL);
      await sleep(150);
      return result('svc-a');
    }, 1);
    await q.submit(sub('run-1'));
    // Event-driven: with a 10-minute timeout, only the finish event can end waitFor within the test's deadline.
    const view = await q.waitFor('run-1', 10 * 60 * 1000);
    expect(view).toMatchObject({ id: 'run-1', status: 'succeeded', connections: [{ name: 'svc-a', status: 'succeeded' }] });
    expect(view?.started_at).toBeDefined();
    expect(view?.finished_at).toBeDefined();
    const raw = readFileSync(finishedFile(dir, 'run-1'), 'utf8');
    expect(raw).not.toContain(EMAIL);
    expect(JSON.parse(raw)).toMatchObject({ status: 'succeeded', attempt: 1, connections: [{ name: 'svc-a' }] });
    expect(JSON.parse(raw).submission).toBeUndefined();
  });

  it('waitFor answers with the current view when the timeout comes first', async () => {
    const q = queueOn(freshDir());
    await q.submit(sub('slow'));
    const t0 = performance.now();
    const view = await q.waitFor('slow', 200);
    expect(view?.status).toBe('queued');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
  });

  it('never runs a client id twice, even across a restart', async () => {
    const dir = freshDir();
    const q = queueOn(dir);
    const seen: string[] = [];
    await q.start(async (job) => {
      seen.push(job.id);
      return result();
    }, 4);
    const [a, b] = await Promise.all([q.submit(sub('once')), q.submit(sub('once'))]);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    expect((await q.waitFor('once', 5000))?.status).toBe('succeeded');
    const again = await q.submit(sub('once'));
    expect(again).toMatchObject({ created: false, job: { id: 'once', status: 'succeeded' } });
    await q.close(1000);

    const q2 = queueOn(dir);
    await q2.start(async (job) => {
      seen.push(job.id);
      return result();
    }, 4);
    expect((await q2.submit(sub('once'))).created).toBe(false);
    await sleep(100);
    expect(seen).toEqual(['once']);
  });

  it('runs at most `concurrency` jobs at once', async () => {
    const q = queueOn(freshDir());
    let now = 0;
    let max = 0;
    for (let i = 0; i < 7; i++) await q.submit(sub(`c${i}`));
    await q.start(async () => {
      max = Math.max(max, ++now);
      await sleep(40);
      now--;
      return result();
    }, 3);
    for (let i = 0; i < 7; i++) expect((await q.waitFor(`c${i}`, 5000))?.status).toBe('succeeded');
    expect(max).toBe(3);
  });

  it('runs jobs first in, first out', async () => {
    const q = queueOn(freshDir());
    const order: string[] = [];
    await q.start(async (job) => {
      order.push(job.id);
      await sleep(5);
      return result();
    }, 1);
    const ids = ['f-z', 'f-a', 'f-m', 'f-b', 'f-y'];
    for (const id of ids) await q.submit(sub(id));
    for (const id of ids) expect((await q.waitFor(id, 5000))?.status).toBe('succeeded');
    expect(order).toEqual(ids);
  });

  it('records a throwing processor as failed: INTERNAL for a bug, the code of an AgentError', async () => {
    const dir = freshDir();
    const q = queueOn(dir);
    await q.start(async (job) => {
      if (job.id === 'bug') throw new TypeError(`cannot read ${EMAIL}`);
      throw new AgentError('CONNECTION_NOT_FOUND', 'no connection named "x"; use a name from the config');
    }, 2);
    await q.submit(sub('bug'));
    await q.submit(sub('unknown-connection'));
    const bug = await q.waitFor('bug', 5000);
    expect(bug).toMatchObject({ status: 'failed', connections: [], error: { code: 'INTERNAL' } });
    expect(bug?.error?.message).not.toContain(EMAIL);
    expect(await q.waitFor('unknown-connection', 5000)).toMatchObject({ status: 'failed', error: { code: 'CONNECTION_NOT_FOUND' } });
    expect(readFileSync(finishedFile(dir, 'bug'), 'utf8')).not.toContain(EMAIL);
  });
});

describe('embedded queue: shutdown', () => {
  it('lets a running job finish within the grace period', async () => {
    const q = queueOn(freshDir());
    const started = deferred();
    await q.start(async () => {
      started.resolve();
      await sleep(150);
      return result();
    }, 1);
    await q.submit(sub('finishes'));
    await started.promise;
    await q.close(5000);
    expect((await q.get('finishes'))?.status).toBe('succeeded');
  });

  it('hands a job back after the grace period; a new queue on the same folder finishes it', async () => {
    const dir = freshDir();
    const q = queueOn(dir);
    const started = deferred();
    await q.start(async (_job, signal) => {
      started.resolve();
      await sleep(60_000, undefined, { signal });
      return result();
    }, 1);
    await q.submit(sub('handed-back'));
    await q.submit(sub('never-started'));
    await started.promise;
    const t0 = performance.now();
    await q.close(100);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(readJournal(dir, 'handed-back')).toMatchObject({ status: 'queued', attempt: 1, submission: { identifiers: { email: EMAIL } } });
    expect(readJournal(dir, 'never-started')).toMatchObject({ status: 'queued', attempt: 0 });

    const q2 = queueOn(dir);
    const runs: QueuedJob[] = [];
    await q2.start(async (job) => {
      runs.push(job);
      return result();
    }, 1);
    expect((await q2.waitFor('handed-back', 5000))?.status).toBe('succeeded');
    expect((await q2.waitFor('never-started', 5000))?.status).toBe('succeeded');
    expect(runs.map((r) => [r.id, r.attempt])).toEqual([['handed-back', 2], ['never-started', 1]]);
    expect(runs[0].submission.identifiers).toEqual({ email: EMAIL });
  });

  it('hands back a job whose processor resolves with cancelled results after the abort', async () => {
    const dir = freshDir();
    const q = queueOn(dir);
    const started = deferred();
    await q.start(async (_job, signal) => {
      started.resolve();
      await new Promise((resolve) => signal.addEventListener('abort', resolve));
      return result('svc', 'failed'); // what an aborted engine run looks like
    }, 1);
    await q.submit(sub('cancelled'));
    await started.promise;
    await q.close(50);
    expect(readJournal(dir, 'cancelled')).toMatchObject({ status: 'queued', attempt: 1 });
  });

  it('hands back a job whose processor ignores the abort, without waiting for it', async () => {
    const dir = freshDir();
    const q = makeEmbeddedQueue({ dataDir: dir, logger: logs.logger, abortSettleMs: 100 });
    const started = deferred();
    const release = deferred();
    await q.start(async () => {
      started.resolve();
      await release.promise;
      return result('late');
    }, 1);
    await q.submit(sub('stubborn'));
    await started.promise;
    const t0 = performance.now();
    await q.close(50);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(readJournal(dir, 'stubborn')).toMatchObject({ status: 'queued' });
    release.resolve();
    await sleep(50);
    expect(readJournal(dir, 'stubborn')).toMatchObject({ status: 'queued', connections: [] }); // the late result is ignored
  });
});
