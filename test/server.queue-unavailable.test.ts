/**
 * The job API when the queue cannot record jobs: the embedded journal's folder refuses writes (a
 * plain file takes its place, so every write fails in the kernel as on a full disk). POST answers
 * 503 queue_unavailable with Retry-After and accepts nothing; /readyz's queue check fails on the
 * next probe, not at the next background check; both recover by themselves. (The live connection has
 * no test query here, so /readyz's other checks are not what this test watches.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connection, query } from './helpers/agent.js';
import { getToken, startTestServer, type TestServer } from './helpers/server.js';

let s: TestServer;
let token: string;
const EMAIL = 'tom.smykowski@initech.example';

beforeAll(async () => {
  s = await startTestServer([connection({ delete: [query('http://127.0.0.1:9/d')] }, { name: 'Billing' })], { process: false });
  token = await getToken(s.url);
  await s.readiness.refresh();
});
afterAll(async () => {
  await s?.close();
});

const post = (body: unknown) =>
  fetch(`${s.url}/api/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('POST /api/v1/jobs while the journal refuses writes', () => {
  it('answers 503 queue_unavailable with Retry-After, /readyz 503 at once, and both recover', async () => {
    const jobs = join(s.agent.dir, 'data', 'jobs');
    expect((await post({ type: 'delete', identifiers: { email: EMAIL }, id: 'before' })).status).toBe(202);
    const queueCheck = async () => ((await (await fetch(`${s.url}/readyz`)).json()) as { checks: Record<string, unknown> }).checks.queue;
    expect(await queueCheck()).toEqual({ ok: true });

    await rename(jobs, `${jobs}.away`);
    await writeFile(jobs, 'not a folder');
    const refused = await post({ type: 'delete', identifiers: { email: EMAIL }, id: 'during' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    const body = (await refused.json()) as { error: string; message: string };
    expect(body.error).toBe('queue_unavailable');
    expect(body.message).not.toContain(EMAIL);
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: Record<string, unknown> }).checks.queue).toEqual({ ok: false, code: 'QUEUE_UNAVAILABLE' });
    const unknown = await fetch(`${s.url}/api/v1/jobs/during`, { headers: { authorization: `Bearer ${token}` } });
    expect(unknown.status).toBe(404); // nothing half-accepted

    await rm(jobs);
    await rename(`${jobs}.away`, jobs);
    const deadline = Date.now() + 10_000;
    while (!((await queueCheck()) as { ok: boolean }).ok) {
      if (Date.now() > deadline) throw new Error('/readyz did not recover');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await post({ type: 'delete', identifiers: { email: EMAIL }, id: 'after' })).status).toBe(202);
    expect(s.agent.logs.lines().join('\n')).not.toContain(EMAIL);
  });
});
