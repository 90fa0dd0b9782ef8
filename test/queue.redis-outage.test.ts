/**
 * The Redis queue against a private redis-server this test starts, kills and restarts: health turns
 * at once, calls fail with QUEUE_UNAVAILABLE instead of hanging, startup warns about a Redis without
 * persistence, and callbacks survive the replica that finished the job.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAgentError } from '../src/errors.js';
import { makeRedisQueue } from '../src/queue/redis.js';
import type { JobNotifier, JobQueue, JobSubmission, JobView } from '../src/queue/types.js';
import { captureLogs } from './helpers/agent.js';
import { deferred, result } from './helpers/queue.js';

const EMAIL = 'bob.slydell@initech.example';
const sub = (id: string): JobSubmission => ({ id, type: 'access', identifiers: { email: EMAIL } });
const logs = captureLogs('INFO');

let root: string;
const open: JobQueue[] = [];
const servers: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A private redis-server; resolves once it accepts connections. */
async function startRedis(port: number, dir: string, appendonly: 'yes' | 'no'): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', appendonly], { stdio: ['ignore', 'pipe', 'pipe'] });
  servers.push(child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

const stopRedis = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

function replica(port: number, extra: { notify?: JobNotifier; name?: string } = {}): JobQueue {
  const q = makeRedisQueue({ redisUrl: `redis://127.0.0.1:${port}`, logger: logs.logger, name: extra.name ?? 'outage', lockMs: 2000, callbackOrphanMs: 0, ...extra });
  open.push(q);
  return q;
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const logged = (re: RegExp) => logs.lines().some((l) => re.test(l));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'redis-outage-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((q) => q.close(0)));
  await Promise.all(servers.splice(0).map(stopRedis));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  expect(logs.lines().join('\n')).not.toContain(EMAIL);
});

describe('redis queue: an outage', () => {
  it('turns unhealthy at once, answers QUEUE_UNAVAILABLE instead of hanging, and recovers when Redis is back', async () => {
    const port = await freePort();
    const dir = await mkdtemp(join(root, 'a-'));
    const redis = await startRedis(port, dir, 'no');
    const q = replica(port);
    await q.start(async () => result(), 1);
    expect((await q.submit(sub('before'))).created).toBe(true);
    await until(() => q.health().ok, 'the side connection is ready');
    await until(() => logged(/Redis keeps no persistence \(appendonly no/), 'startup warns about a Redis without persistence');

    await stopRedis(redis);
    await until(() => !q.health().ok, 'the lost connection shows in health');
    expect(q.health()).toMatchObject({ ok: false, code: 'QUEUE_UNAVAILABLE' });
    for (const call of [() => q.submit(sub('during')), () => q.get('before'), () => q.depth()]) {
      const err = await (call() as Promise<unknown>).catch((e: unknown) => e);
      expect(isAgentError(err, 'QUEUE_UNAVAILABLE')).toBe(true);
    }

    await startRedis(port, dir, 'no'); // an empty Redis: without persistence, what it held is gone
    await until(() => q.health().ok, 'health recovers');
    expect((await q.submit(sub('after'))).created).toBe(true);
    expect(await q.get('before')).toBeUndefined(); // what "no persistence" means, and why startup warns
  }, 60_000);

  it('does not warn when Redis keeps an append-only file', async () => {
    const port = await freePort();
    const dir = await mkdtemp(join(root, 'b-'));
    await startRedis(port, dir, 'yes');
    const mark = logs.lines().length;
    const q = replica(port);
    await q.submit(sub('aof'));
    await until(() => q.health().ok, 'the side connection is ready');
    await until(() => logs.lines().slice(mark).some((l) => /Redis persists accepted jobs/.test(l)), 'the persistence check answers');
    expect(logs.lines().slice(mark).some((l) => /Redis keeps/.test(l))).toBe(false);
  }, 30_000);
});

describe('redis queue: durable callbacks', () => {
  it('a callback abandoned by one replica at shutdown is delivered by another, once, without running the job again', async () => {
    const port = await freePort();
    await startRedis(port, await mkdtemp(join(root, 'c-')), 'no');
    const runs: string[] = [];
    const calls: string[] = [];
    const a = replica(port, {
      notify: (view, signal) =>
        new Promise((resolve) => {
          calls.push(`a:${view.id}`);
          signal.addEventListener('abort', () => resolve('abandoned'), { once: true });
        }),
    });
    await a.start(async (job) => {
      runs.push(job.id);
      return result();
    }, 1);
    await a.submit(sub('cb-r'));
    await until(() => calls.length === 1, 'replica a attempts the callback');
    await a.close(50);

    const delivered = deferred<JobView>();
    const b = replica(port, {
      notify: async (view) => {
        calls.push(`b:${view.id}`);
        delivered.resolve(view);
        return 'delivered';
      },
    });
    await b.start(async (job) => {
      runs.push(job.id);
      return result();
    }, 1);
    expect(await delivered.promise).toMatchObject({ id: 'cb-r', status: 'succeeded' });
    expect(runs).toEqual(['cb-r']);
    expect(calls).toEqual(['a:cb-r', 'b:cb-r']);
  }, 30_000);
});
