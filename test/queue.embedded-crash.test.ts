import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { makeJobQueue } from '../src/queue/index.js';
import type { JobQueue } from '../src/queue/types.js';
import { assertBuilt, result, spawnLineChild, type LineChild } from './helpers/queue.js';

let dataDir: string;
let child: LineChild | undefined;
let queue: JobQueue | undefined;

beforeAll(async () => {
  assertBuilt();
  dataDir = await mkdtemp(join(tmpdir(), 'queue-crash-'));
});
afterAll(async () => {
  await child?.kill();
  await queue?.close(0);
  await rm(dataDir, { recursive: true, force: true });
});

describe('embedded queue: kill -9', () => {
  it('loses no accepted job: a new queue on the same folder runs them all, the interrupted one again', async () => {
    const ids = ['k1', 'k2', 'k3'];
    child = spawnLineChild('queue-embedded-child.mjs', { DATA_DIR: dataDir, JOB_IDS: ids.join(',') });
    for (const id of ids) await child.waitForLine(new RegExp(`^submitted ${id}$`));
    await child.waitForLine(/^start k1 1$/);
    await child.kill(); // SIGKILL mid-job: no chance to journal anything more
    expect(child.child.signalCode).toBe('SIGKILL');

    const journal = (id: string) => JSON.parse(readFileSync(join(dataDir, 'jobs', `${id}.json`), 'utf8'));
    expect(journal('k1')).toMatchObject({ status: 'running', attempt: 1 });
    expect(journal('k2')).toMatchObject({ status: 'queued', attempt: 0 });

    queue = makeJobQueue({ dataDir, logger: pino({ level: 'silent' }) });
    const runs: Array<[string, number]> = [];
    await queue.start(async (job) => {
      runs.push([job.id, job.attempt]);
      expect(job.submission.identifiers).toEqual({ email: `${job.id}@example.com` });
      return result();
    }, 1);
    for (const id of ids) expect((await queue.waitFor(id, 5000))?.status).toBe('succeeded');
    expect(runs).toEqual([['k1', 2], ['k2', 1], ['k3', 1]]);
    for (const id of ids) expect(readFileSync(join(dataDir, 'jobs', 'finished', `${id}.json`), 'utf8')).not.toContain('@example.com');
  });
});
