import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connection, query } from './helpers/agent.js';
import { startTestServer, getToken, type TestServer } from './helpers/server.js';
import { startTarget, json, type Target } from './helpers/target.js';
import { metricValues } from './helpers/metrics.js';
import type { JobView } from '../src/queue/types.js';

const SEED_RESPONSE = [
  { first_name: 'Peter', last_name: 'Gibbons', company: 'Initech', friends: ['Samir', 'Michael'] },
  { address_type: 'Home', address: { street: '191 N. Lamar', city: 'Flander', state: 'Illinois', zip_code: '77070' } },
];
const EMAIL = 'peter@initech.com';

let target: Target;
let s: TestServer;
let token: string;
let conn: Record<string, unknown>;
/** Access requests the target served, by email. */
const accessHits = (email: string) => target.received.filter((r) => r.url === `/v0/users?email=${encodeURIComponent(email)}`).length;

beforeAll(async () => {
  target = await startTarget(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/slow') await new Promise((r) => setTimeout(r, 1500));
    if (url.pathname === '/v0/users' || url.pathname === '/slow') return json(res, 200, SEED_RESPONSE);
    json(res, 200, {});
  });
  conn = connection({ access: [query(`${target.url}/v0/users?email={email}`)] }, { name: 'User Service' });
  const slow = connection({ access: [query(`${target.url}/slow?email={email}`)] }, { name: 'Slow Service', mode: 'test' });
  s = await startTestServer([conn, slow]);
  token = await getToken(s.url);
});
afterAll(async () => {
  await s?.close();
  await target?.close();
});

const post = (body: unknown, qs = '', headers: Record<string, string> = {}) =>
  fetch(`${s.url}/api/v1/jobs${qs}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
const getJob = (id: string) => fetch(`${s.url}/api/v1/jobs/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${token}` } });

function expectSeedReports(view: JobView): void {
  expect(view.status).toBe('succeeded');
  const [result] = view.connections.filter((c) => c.uuid === conn.uuid);
  const dir = join(s.reportsDir, view.id, conn.uuid as string);
  expect(result!.reports).toEqual([join(dir, 'report_1.csv'), join(dir, 'report_2.csv')]);
  // The count and folder that name reports past the listed ones survive the API's response schema.
  expect(result).toMatchObject({ report_count: 2, report_location: dir });
  expect(readFileSync(result!.reports![0]!, 'utf8')).toBe('first_name,Peter\nlast_name,Gibbons\ncompany,Initech\nfriends_0,Samir\nfriends_1,Michael\n');
  expect(readFileSync(result!.reports![1]!, 'utf8')).toContain('address_street,191 N. Lamar\n');
}

describe('POST /api/v1/jobs and GET /api/v1/jobs/:id', () => {
  it('runs an access job and, with ?wait, answers 200 with report locations (never the data, never the identifiers)', async () => {
    const res = await post({ type: 'access', identifiers: { email: EMAIL } }, '?wait=10');
    expect(res.status).toBe(200);
    const text = await res.text();
    const view = JSON.parse(text) as JobView;
    expectSeedReports(view);
    expect(res.headers.get('location')).toBe(`/api/v1/jobs/${view.id}`);
    expect(text).not.toContain(EMAIL);
    expect(text).not.toContain('Gibbons');
    expect(view.created_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(view.finished_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    // The test-mode connection was not named, so it sat this one out.
    expect(view.connections.find((c) => c.name === 'Slow Service')?.status).toBe('skipped');
  });

  it('answers 202 {id, status} without ?wait; GET then shows the result', async () => {
    const res = await post({ type: 'access', identifiers: { email: 'samir@initech.com' } });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { id: string; status: string };
    expect(Object.keys(accepted).sort()).toEqual(['id', 'status']);
    expect(['queued', 'running', 'succeeded']).toContain(accepted.status);
    let view: JobView | undefined;
    for (let i = 0; i < 100; i++) {
      view = (await (await getJob(accepted.id)).json()) as JobView;
      if (view.status === 'succeeded') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expectSeedReports(view!);
    expect(accessHits('samir@initech.com')).toBe(1);
  });

  it('answers 202 when ?wait runs out before the job is final', async () => {
    const started = Date.now();
    const res = await post({ type: 'access', identifiers: { email: 'michael@initech.com' }, connections: ['Slow Service'] }, '?wait=1');
    expect(res.status).toBe(202);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    const body = (await res.json()) as { id: string; status: string };
    expect(['queued', 'running']).toContain(body.status);
  });

  it('is idempotent on the client id: the same id returns the same job and runs it once', async () => {
    const email = 'milton@initech.com';
    const first = await post({ type: 'access', identifiers: { email }, id: 'dg-req.42' }, '?wait=10');
    expect(first.status).toBe(200);
    expect(((await first.json()) as JobView).id).toBe('dg-req.42');
    const again = await post({ type: 'access', identifiers: { email }, id: 'dg-req.42' });
    expect(again.status).toBe(202);
    expect(await again.json()).toEqual({ id: 'dg-req.42', status: 'succeeded' });
    const waited = await post({ type: 'access', identifiers: { email }, id: 'dg-req.42' }, '?wait=5');
    expect(waited.status).toBe(200); // already final: the full view at once
    expectSeedReports((await waited.json()) as JobView);
    expect(accessHits(email)).toBe(1);
  });

  it('answers 409 when a client id is reused for another request, even from 20 parallel POSTs', async () => {
    const posts = await Promise.all(
      Array.from({ length: 20 }, (_, i) => post({ type: 'delete', identifiers: { email: `p${i}@initech.com` }, id: 'conflict-1' })),
    );
    const statuses = posts.map((r) => r.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    const bodies = await Promise.all(posts.filter((r) => r.status === 409).map((r) => r.text()));
    expect(JSON.parse(bodies[0]!)).toMatchObject({ error: 'conflict', message: expect.stringContaining("'conflict-1'") });
    expect(bodies.join('\n')).not.toMatch(/p\d+@initech/);
    // The same request again is fine; another type never is.
    const winner = posts.findIndex((r) => r.status === 202);
    expect((await post({ type: 'delete', identifiers: { email: `p${winner}@initech.com` }, id: 'conflict-1' })).status).toBe(202);
    expect((await post({ type: 'optout', identifiers: { email: `p${winner}@initech.com` }, id: 'conflict-1' })).status).toBe(409);
  });

  it('refuses an unknown connection with 404 naming it, before anything is queued', async () => {
    const res = await post({ type: 'delete', identifiers: { email: EMAIL }, connections: ['User Service', 'Nope Service'], id: 'never-queued' });
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('connection_not_found');
    expect(body.message).toContain("'Nope Service'");
    expect((await getJob('never-queued')).status).toBe(404);
  });

  it('accepts a connection by uuid', async () => {
    const res = await post({ type: 'access', identifiers: { email: 'bill@initech.com' }, connections: [conn.uuid] }, '?wait=10');
    expect(res.status).toBe(200);
    expectSeedReports((await res.json()) as JobView);
  });

  it('one rule for job ids: a 128-character id is accepted and its Location answers; 129 characters or ".." are a 400', async () => {
    const id = `dg-${'x'.repeat(125)}`;
    const res = await post({ type: 'delete', identifiers: { email: EMAIL }, id });
    expect(res.status).toBe(202);
    const location = res.headers.get('location')!;
    expect(location).toBe(`/api/v1/jobs/${id}`);
    expect((await getJob(id)).status).toBe(200);
    expect((await post({ type: 'delete', identifiers: { email: EMAIL }, id: `${id}y` })).status).toBe(400);
    expect((await post({ type: 'delete', identifiers: { email: EMAIL }, id: 'a..b' })).status).toBe(400);
    const long = await getJob('y'.repeat(300));
    expect(long.status).toBe(400);
    expect(await long.text()).not.toContain('y'.repeat(300));
  });

  it('answers 404 for an unknown job id and 400 for an impossible one', async () => {
    const res = await getJob('no-such-job');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: 'not_found' });
    expect((await getJob('has spaces')).status).toBe(400);
  });

  it.each([
    ['61', 'querystring/wait must be <= 60'],
    ['-1', 'querystring/wait must be >= 0'],
    ['abc', 'querystring/wait must be an integer'],
  ])('refuses ?wait=%s with 400 "%s"', async (wait, message) => {
    const res = await post({ type: 'access', identifiers: { email: EMAIL } }, `?wait=${wait}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_request', message });
  });
});

describe('GET /metrics', () => {
  // Deltas over this test's own job: the counters are shared with the tests above, whatever ran before.
  it('counts a finished job and its queries, and exposes the queue, token and process families', async () => {
    const jobs = 'dsr_jobs_total{type="access",status="succeeded"}';
    const queries = 'dsr_query_duration_seconds_count{connection="User Service",type="access",outcome="ok"}';
    const before = await metricValues(s.url, [jobs, queries]);
    const email = 'bob.metrics@initech.com';
    expect((await post({ type: 'access', identifiers: { email } }, '?wait=10')).status).toBe(200);
    expect(await metricValues(s.url, [jobs, queries])).toEqual({ [jobs]: before[jobs]! + 1, [queries]: before[queries]! + 1 });

    const res = await fetch(`${s.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^dsr_queue_depth \d+$/m);
    expect(text).toMatch(/^dsr_query_duration_seconds_bucket\{le="0\.005",connection="User Service",type="access",outcome="ok"\} \d+$/m);
    for (const family of ['dsr_query_retries_total', 'dsr_query_timeouts_total', 'dsr_token_failures_total', 'process_cpu_user_seconds_total', 'nodejs_heap_size_total_bytes']) {
      expect(text).toContain(`# TYPE ${family}`);
    }
    expect(text).not.toContain(email);
    expect(text).not.toContain(EMAIL);
  });
});
