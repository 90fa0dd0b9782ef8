import { describe, it, expect, afterAll } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { startTarget, json, type Target } from './helpers/target.js';
import { startService, bearer, submit, waitFinal, type ServiceProcess } from './helpers/service.js';
import { writeServiceConfig, CLIENT_ID, CLIENT_SECRET } from './helpers/service-config.js';

const REDIS = 'redis://127.0.0.1:6379';
const QUEUE = `dsr-e2e-${process.pid}-${Date.now()}`;
let target: Target | undefined;
const services: ServiceProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(services.map((s) => s.stop('SIGKILL')));
  await target?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  const q = new Queue(QUEUE, { connection: { url: REDIS } });
  await q.obliterate({ force: true }).catch(() => undefined);
  await q.close();
});

describe('dsr-agent serve on Redis: two replicas', () => {
  it('any replica accepts and answers; a replica killed mid-job hands it to the other, which finishes it once', async () => {
    target = await startTarget((req, res) => {
      if (req.url!.startsWith('/users')) setTimeout(() => json(res, 200, [{ first_name: 'Peter' }]), 2500);
      else json(res, 200, {});
    });
    const { dir, configPath } = writeServiceConfig(target.url, { redis_url: REDIS, agent: { queue_name: QUEUE, job_lock_seconds: 1, job_concurrency: 2 } });
    dirs.push(dir);
    const a = await startService(configPath, { DSR_AGENT_DATA_DIR: join(dir, 'a') });
    const b = await startService(configPath, { DSR_AGENT_DATA_DIR: join(dir, 'b') });
    services.push(a, b);
    const auth = await bearer(a.url, CLIENT_ID, CLIENT_SECRET);

    // A quick delete accepted by A is readable from B.
    const del = await submit(a.url, auth, { type: 'delete', identifiers: { email: 'x@y.z' }, id: 'redis-del-1' });
    expect(del.status).toBe(202);
    expect(await waitFinal(b.url, auth, 'redis-del-1')).toMatchObject({ id: 'redis-del-1', status: 'succeeded' });
    // The same client id again returns the same job and does not run it twice.
    const deletes = () => target!.received.filter((r) => r.method === 'DELETE').length;
    const before = deletes();
    expect((await submit(b.url, auth, { type: 'delete', identifiers: { email: 'x@y.z' }, id: 'redis-del-1' })).json.id).toBe('redis-del-1');
    await new Promise((r) => setTimeout(r, 300));
    expect(deletes()).toBe(before);

    // A slow access job: kill -9 whichever replica starts it.
    const accepted = await submit(a.url, auth, { type: 'access', identifiers: { email: 'peter@initech.com' }, id: 'redis-slow-1' });
    expect(accepted.status).toBe(202);
    let runner: ServiceProcess | undefined;
    for (let i = 0; i < 100 && !runner; i++) {
      runner = [a, b].find((s) => /"jobId":"redis-slow-1"[^\n]*job started/.test(s.output()));
      if (!runner) await new Promise((r) => setTimeout(r, 50));
    }
    expect(runner).toBeDefined();
    const survivor = runner === a ? b : a;
    await runner!.stop('SIGKILL');
    const job = await waitFinal(survivor.url, auth, 'redis-slow-1', 30_000);
    expect(job).toMatchObject({ id: 'redis-slow-1', type: 'access', status: 'succeeded' });
    expect(job.connections[0].reports).toHaveLength(1);
    expect(job.connections[0].reports[0]).toContain(join(dir, runner === a ? 'b' : 'a'));
    expect(survivor.output()).toMatch(/"jobId":"redis-slow-1"[^\n]*"attempt":2[^\n]*job started/);
    const finished = survivor.output().split('\n').filter((l) => l.includes('"jobId":"redis-slow-1"') && l.includes('job finished'));
    expect(finished).toHaveLength(1);
  }, 60_000);
});
