import { describe, it, expect, afterEach } from '@jest/globals';
import { request } from 'undici';
import { checkDastraOptions, makeDastraSource, type DastraSourceOptions } from '../src/sources/dastra.js';
import type { JobOutcome, PendingRequest, RequestSource } from '../src/sources/types.js';
import { isAgentError, type AgentError } from '../src/errors.js';
import { startDastraFake, dastraRequest, type DastraFake } from './helpers/fakes/dastra.js';

const FAST = { retries: 3, minDelayMs: 5, maxDelayMs: 20 };

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});
async function fake(): Promise<DastraFake> {
  const f = await startDastraFake();
  closers.push(() => f.close());
  return f;
}

function source(f: DastraFake, o: Partial<DastraSourceOptions> = {}): RequestSource {
  return makeDastraSource({ name: 'dastra-eu', baseUrl: f.url, workspaceId: f.workspaceId, headers: { Authorization: f.authorization }, retry: FAST, ...o });
}

const signal = () => new AbortController().signal;

async function collect(s: RequestSource): Promise<PendingRequest[]> {
  const out: PendingRequest[] = [];
  for await (const r of s.list(signal())) out.push(r);
  return out;
}

async function failure(p: Promise<unknown>): Promise<AgentError> {
  try {
    await p;
  } catch (err) {
    if (isAgentError(err)) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

/** A list page answered verbatim (to show what the adapter does with what the server filters should have removed). */
const page = (items: unknown[]) => ({ status: 200, body: { items, total: items.length, size: 100, page: 1 } });

describe('listing: eligibility', () => {
  it('yields requests in the configured states whose identity is validated, and asks Dastra to filter by states and purposes', async () => {
    const f = await fake();
    f.addRequest({ id: 1, state: 'Open' });
    f.addRequest({ id: 2, state: 'Processing' });
    f.addRequest({ id: 3, state: 'Closed' });
    f.addRequest({ id: 4, state: 'IdentityValidation' });
    f.addRequest({ id: 5, state: 'Open', identityValidated: false });
    f.addRequest({ id: 6, state: 'Processing', identityValidated: null });
    f.addRequest({ id: 7, state: 'Active', identityValidated: false });
    f.addRequest({ id: 8, state: 'Open', archived: true });

    expect((await collect(source(f))).map((r) => r.id)).toEqual(['1', '2']);
    const q = f.calls[0]!.query;
    expect(q.getAll('states')).toEqual(['Open', 'Processing']);
    expect(q.getAll('purposes')).toEqual(['Access', 'Portability', 'Erasure', 'Opposition']);
    expect(f.calls[0]!.path).toBe('/v1/ws/1234/DataSubjectRequests');
    expect(f.calls[0]!.headers.authorization).toBe(f.authorization);

    expect((await collect(source(f, { requireIdentityValidated: false }))).map((r) => r.id)).toEqual(['1', '2', '5', '6']);
    expect((await collect(source(f, { states: ['Active'], requireIdentityValidated: false }))).map((r) => r.id)).toEqual(['7']);
    expect((await collect(source(f, { states: ['Active'] }))).map((r) => r.id)).toEqual([]);
  });

  it('checks state, identity and purposes itself when Dastra returns more than the filters ask for', async () => {
    const f = await fake();
    f.fault('list', page([
      dastraRequest(1, { state: 'Closed' }),
      dastraRequest(2, { identityValidated: 'true' }),
      dastraRequest(3, { purposes: ['Rectification'] }),
      dastraRequest(4, { purposes: 'Access' }),
      dastraRequest(5),
    ]));
    expect((await collect(source(f))).map((r) => r.id)).toEqual(['5']);
  });
});

describe('listing: purposes and identifiers', () => {
  it('makes one job per mapped purpose, de-duplicated, ignoring unmapped purposes', async () => {
    const f = await fake();
    f.addRequest({ id: 1, purposes: ['Access', 'Portability'] });
    f.addRequest({ id: 2, purposes: ['Erasure', 'Rectification', 'Access'] });
    f.addRequest({ id: 3, purposes: ['Opposition'] });
    f.addRequest({ id: 4, purposes: ['Rectification', 'Information'] });
    f.addRequest({ id: 5, purposes: [] });
    f.addRequest({ id: 6, purposes: ['Portability', 'Erasure', 'Erasure'] });
    const got = Object.fromEntries((await collect(source(f))).map((r) => [r.id, r.jobs.map((j) => j.type)]));
    expect(got).toEqual({ 1: ['access'], 2: ['delete', 'access'], 3: ['optout'], 6: ['access', 'delete'] });

    const onlyErasure = await collect(source(f, { purposes: { Erasure: 'delete' } }));
    expect(onlyErasure.map((r) => [r.id, r.jobs.map((j) => j.type)])).toEqual([['2', ['delete']], ['6', ['delete']]]);
    expect(f.calls.at(-1)!.query.getAll('purposes')).toEqual(['Erasure']);
  });

  it('maps request fields to identifiers, skipping blank ones; a request with none is yielded with attention and no jobs', async () => {
    const f = await fake();
    f.addRequest({ id: 1, email: 'peter@initech.com', phoneNumber: '+33 6 12 34 56 78', userId: 'u-42', purposes: ['Access', 'Erasure'] });
    f.addRequest({ id: 2, email: '   ', phoneNumber: ' +33 6 00 00 00 00 ', userId: '' });
    f.addRequest({ id: 3, email: null, phoneNumber: '', userId: null });
    const [one, two, three] = await collect(source(f));
    expect(one).toEqual({
      id: '1',
      jobs: [
        { type: 'access', identifiers: { email: 'peter@initech.com', phone_number: '+33 6 12 34 56 78', user_id: 'u-42' } },
        { type: 'delete', identifiers: { email: 'peter@initech.com', phone_number: '+33 6 12 34 56 78', user_id: 'u-42' } },
      ],
    });
    expect(two).toEqual({ id: '2', jobs: [{ type: 'access', identifiers: { phone_number: '+33 6 00 00 00 00' } }] });
    expect(three).toEqual({ id: '3', jobs: [], attention: expect.stringMatching(/^no identifier: .*email, phoneNumber, userId/) });

    const custom = await collect(source(f, { identifiers: { refId: 'customer_ref', email: 'email' } }));
    expect(custom.map((r) => r.jobs[0]!.identifiers)).toEqual([
      { customer_ref: 'REF-1', email: 'peter@initech.com' },
      { customer_ref: 'REF-2' },
      { customer_ref: 'REF-3' },
    ]);
  });
});

describe('listing: pages', () => {
  it('reads every page of 2,350 requests (page size 100) and yields exactly the eligible ones, each once', async () => {
    const f = await fake();
    const state = (i: number) => (i % 5 === 0 ? 'Closed' : i % 5 === 1 ? 'Processing' : 'Open');
    const validated = (i: number) => i % 7 !== 0;
    const purposes = (i: number) => (i % 11 === 0 ? ['Rectification'] : i % 2 ? ['Access', 'Portability'] : ['Erasure']);
    f.addRequests(2350, (i) => ({ state: state(i), identityValidated: validated(i), purposes: purposes(i) }));
    const expected: string[] = [];
    let matching = 0;
    for (let i = 0; i < 2350; i++) {
      if (state(i) === 'Closed' || i % 11 === 0) continue;
      matching++;
      if (validated(i)) expected.push(String(i + 1));
    }

    const got = await collect(source(f, { pageSize: 100 }));
    expect(got.map((r) => r.id)).toEqual(expected);
    expect(new Set(got.map((r) => r.id)).size).toBe(got.length);
    const pages = Math.ceil(matching / 100);
    expect(f.count('list')).toBe(pages);
    expect(f.calls.map((c) => [c.query.get('page'), c.query.get('size')])).toEqual(Array.from({ length: pages }, (_, i) => [String(i + 1), '100']));
  });

  it('stops when total is reached, on a short page and on an empty page', async () => {
    const f = await fake();
    f.addRequests(200);
    expect(await collect(source(f, { pageSize: 100 }))).toHaveLength(200);
    expect(f.count('list')).toBe(2);

    f.fault('list', { status: 200, body: { items: [dastraRequest(1)], size: 100, page: 1 } });
    expect(await collect(source(f, { pageSize: 100 }))).toHaveLength(1);
    expect(f.count('list')).toBe(3);

    f.fault('list', { status: 200, body: { items: Array.from({ length: 2 }, (_, i) => dastraRequest(i + 1)), size: 2, page: 1 } }, { status: 200, body: { items: [], size: 2, page: 2 } });
    expect(await collect(source(f, { pageSize: 2 }))).toHaveLength(2);
    expect(f.count('list')).toBe(5);
  });

  it('fails with PAGINATION_LIMIT rather than truncate when more than maxPages pages are needed', async () => {
    const f = await fake();
    f.addRequests(30);
    const err = await failure(collect(source(f, { pageSize: 10, maxPages: 2 })));
    expect(err.code).toBe('PAGINATION_LIMIT');
    expect(f.count('list')).toBe(2);
    expect(await collect(source(f, { pageSize: 10, maxPages: 3 }))).toHaveLength(30);
  });

  it('lists 10,000 requests a page at a time, as the reader asks (bounded memory, whatever the count)', async () => {
    const f = await fake();
    f.addRequests(10_000, (i) => ({ purposes: i % 2 ? ['Access'] : ['Erasure', 'Portability'], message: `Please act on my request ${i}: `.padEnd(2000, 'x') }));
    let count = 0;
    let pagesWhenRead = 0;
    for await (const r of source(f, { pageSize: 100 }).list(signal())) {
      count++;
      if (r.jobs.length === 0) throw new Error('unexpected attention');
      // The page holding request n has been fetched, and not the one after it: nothing is read ahead of the
      // reader, so memory holds one page whatever the number of requests (figures in the sql/envelope benches).
      if (count % 1000 === 0) pagesWhenRead = Math.max(pagesWhenRead, f.count('list') - Math.ceil(count / 100));
    }
    expect(count).toBe(10_000);
    expect(f.count('list')).toBe(100);
    expect(pagesWhenRead).toBe(0);
  });
});

const outcome = (jobs: Partial<JobOutcome>[]): { jobs: JobOutcome[] } => ({
  jobs: jobs.map((j, i) => ({
    jobId: `job-${i + 1}`,
    type: 'access',
    status: 'succeeded',
    connections: [{ name: 'crm', status: 'succeeded', reports: 3 }, { name: 'billing', status: 'succeeded', reports: 1 }],
    storage: `s3://dsr-reports/dastra/job-${i + 1}/`,
    ...j,
  })),
});

function without(o: Record<string, unknown>, ...keys: string[]): Record<string, unknown> {
  const copy = { ...o };
  for (const k of keys) delete copy[k];
  return copy;
}

describe('write-back', () => {
  it('reads the request, sets a summary and the done state when every job succeeded, and PUTs the whole object back', async () => {
    const f = await fake();
    const original = structuredClone(f.addRequest({ id: 42, purposes: ['Access', 'Erasure'], email: 'peter@initech.com' }));
    await source(f, { stateWhenDone: 'Closed' }).writeBack('42', outcome([{}, { type: 'delete', connections: [{ name: 'crm', status: 'succeeded', reports: 0 }] }]), signal());

    const stored = f.request(42)!;
    expect(stored.state).toBe('Closed');
    expect(stored.resolutionMessage).toBe([
      'dsr-agent ran 2 jobs for this request.',
      '- access job job-1: succeeded; connections: crm succeeded (3 reports), billing succeeded (1 report); reports stored at s3://dsr-reports/dastra/job-1/',
      '- delete job job-2: succeeded; connections: crm succeeded (0 reports); reports stored at s3://dsr-reports/dastra/job-2/',
    ].join('\n'));
    expect(without(stored, 'state', 'resolutionMessage')).toEqual(without(original, 'state', 'resolutionMessage'));
    expect(f.count('read')).toBe(1);
    expect(f.count('update')).toBe(1);
    const put = f.calls.find((c) => c.route === 'update')!;
    expect(put.path).toBe('/v1/ws/1234/DataSubjectRequests/42');
    expect(put.headers['content-type']).toBe('application/json');
    expect(put.headers.authorization).toBe(f.authorization);
  });

  it('leaves the state alone when a job failed or was partial, and by default', async () => {
    const f = await fake();
    f.addRequests(3, () => ({ state: 'Processing' }));
    await source(f, { stateWhenDone: 'Closed' }).writeBack('1', outcome([{}, { status: 'failed', connections: [{ name: 'crm', status: 'failed', reports: 0 }] }]), signal());
    await source(f, { stateWhenDone: 'Closed' }).writeBack('2', outcome([{ status: 'partial' }]), signal());
    await source(f).writeBack('3', outcome([{}]), signal());
    expect([1, 2, 3].map((id) => f.request(id)!.state)).toEqual(['Processing', 'Processing', 'Processing']);
    expect(f.request(1)!.resolutionMessage).toContain('- access job job-2: failed; connections: crm failed (0 reports)');
    expect(f.request(2)!.resolutionMessage).toContain('job-1: partial;');
  });

  it('writes an attention message without running or closing anything', async () => {
    const f = await fake();
    f.addRequest({ id: 9, email: null });
    const [pending] = await collect(source(f, { stateWhenDone: 'Closed' }));
    await source(f, { stateWhenDone: 'Closed' }).writeBack(pending!.id, { attention: pending!.attention! }, signal());
    expect(f.request(9)).toMatchObject({ state: 'Open', resolutionMessage: expect.stringMatching(/^dsr-agent could not run this request: no identifier: /) });
  });

  it('sends back every other field exactly as Dastra sent it, numbers included', async () => {
    const f = await fake();
    f.addRequest({ id: 7 });
    const text = JSON.stringify(dastraRequest(7, { state: 'Processing' }))
      .replace('"widgetId":4', '"widgetId":12345678901234567890')
      .replace('"nbMessages":1', '"nbMessages":1.0')
      .replace('"remainingDays":30', '"remainingDays":3e1');
    f.fault('read', { status: 200, body: text });
    await source(f, { stateWhenDone: 'Closed' }).writeBack('7', outcome([{}]), signal());
    const body = f.calls.find((c) => c.route === 'update')!.body;
    expect(body).toContain('"widgetId":12345678901234567890');
    expect(body).toContain('"nbMessages":1.0');
    expect(body).toContain('"remainingDays":3e1');
    const sent = JSON.parse(body) as Record<string, unknown>;
    expect(sent.state).toBe('Closed');
    expect(without(sent, 'state', 'resolutionMessage', 'widgetId')).toEqual(without(JSON.parse(text), 'state', 'resolutionMessage', 'widgetId'));
  });

  it('never puts an identifier into the PUT body, even when the outcome carries one', async () => {
    const f = await fake();
    const email = 'Alice.Hostile@Example.com';
    const phone = '+33 6 99 88 77 66';
    f.addRequest({ id: 5, email, phoneNumber: phone, userId: 'user-secret-77', givenName: 'Alice', familyName: 'Hostile' });
    const hostile = outcome([{
      jobId: `job for ${email}`,
      connections: [{ name: 'crm', status: `failed: no user ${email.toLowerCase()}`, reports: 0 }, { name: `billing ${phone}`, status: 'succeeded user-secret-77', reports: 1 }],
      storage: `s3://bucket/${encodeURIComponent(email)}/`,
    }]);
    const s = source(f);
    await s.writeBack('5', hostile, signal());
    await s.writeBack('5', { attention: `cannot run for ${email}` }, signal());
    const puts = f.calls.filter((c) => c.route === 'update');
    expect(puts).toHaveLength(2);
    for (const put of puts) {
      const sent = JSON.parse(put.body) as Record<string, unknown>;
      expect(sent.email).toBe(email);
      const rest = JSON.stringify(without(sent, 'email', 'phoneNumber', 'userId')).toLowerCase();
      expect(rest).not.toContain(email.toLowerCase());
      expect(rest).not.toContain(encodeURIComponent(email).toLowerCase());
      expect(rest).not.toContain(phone);
      expect(rest).not.toContain('user-secret-77');
      expect(rest).not.toMatch(/hostile@|@example\.c/); // not even a cut-off piece of the email
    }
    expect(JSON.parse(puts[0]!.body).resolutionMessage).toContain('crm failed: no user *** (0 reports)');
    expect(JSON.parse(puts[1]!.body).resolutionMessage).toBe('dsr-agent could not run this request: cannot run for ***');
  });
});

describe('errors', () => {
  it('401 and 403 are refused credentials: HTTP_STATUS with the status, not retried', async () => {
    const f = await fake();
    f.addRequest({ id: 1 });
    const bad = source(f, { headers: { Authorization: 'Basic bm9wZTpub3Bl' } });
    const err = await failure(collect(bad));
    expect(err).toMatchObject({ code: 'HTTP_STATUS', status: 401 });
    expect(err.message).toMatch(/^Dastra refused the credentials of source 'dastra-eu' \(401\)/);
    expect(f.count('list')).toBe(1);

    f.fault('list', { status: 403 });
    expect(await failure(collect(source(f)))).toMatchObject({ code: 'HTTP_STATUS', status: 403 });
    expect(f.count('list')).toBe(2);

    expect(await failure(bad.writeBack('1', outcome([{}]), signal()))).toMatchObject({ code: 'HTTP_STATUS', status: 401 });
    expect(f.count('read')).toBe(1);
    expect(f.count('update')).toBe(0);
  });

  it('429 with Retry-After is retried after the wait, then succeeds', async () => {
    const f = await fake();
    f.addRequests(3);
    f.fault('list', { status: 429, retryAfter: 1 });
    const retries: number[] = [];
    const started = Date.now();
    const got = await collect(source(f, { onRetry: (r) => retries.push(r.status!) }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(got).toHaveLength(3);
    expect(f.count('list')).toBe(2);
    expect(retries).toEqual([429]);
  });

  it('503s are retried on every call, then succeed', async () => {
    const f = await fake();
    f.addRequests(3);
    f.fault('list', { status: 503 }, { status: 503 });
    f.fault('read', { status: 503 });
    f.fault('update', { status: 502 }, { status: 504 });
    expect(await collect(source(f))).toHaveLength(3);
    expect(f.count('list')).toBe(3);
    await source(f, { stateWhenDone: 'Closed' }).writeBack('2', outcome([{}]), signal());
    expect([f.count('read'), f.count('update')]).toEqual([2, 3]);
    expect(f.request(2)!.state).toBe('Closed');
  });

  it('gives up after the retries with the status only, never the text Dastra sent', async () => {
    const f = await fake();
    f.addRequest({ id: 1, email: 'milton@initech.com' });
    const echo = { title: 'no such user milton@initech.com', detail: 'milton@initech.com' };
    f.fault('list', ...Array.from({ length: 4 }, () => ({ status: 503, body: echo })));
    const err = await failure(collect(source(f)));
    expect(err).toMatchObject({ code: 'HTTP_STATUS', status: 503 });
    expect(err.message).toMatch(/after 4 attempts/);
    expect(f.count('list')).toBe(4);

    f.fault('update', { status: 400, body: echo });
    const put = await failure(source(f).writeBack('1', outcome([{}]), signal()));
    expect(put).toMatchObject({ code: 'HTTP_STATUS', status: 400 });
    expect(f.count('update')).toBe(1);
    expect(await failure(source(f).writeBack('999', outcome([{}]), signal()))).toMatchObject({ code: 'HTTP_STATUS', status: 404 });
    for (const e of [err, put]) expect(`${e.message} ${JSON.stringify(e)}`).not.toContain('milton');
  });

  it('a malformed list body is RESPONSE_MALFORMED, without its text', async () => {
    const f = await fake();
    const bodies: unknown[] = [
      'not json: peter@initech.com',
      '[{"id": 1, "email": "peter@initech.com"}]',
      { items: 'peter@initech.com', total: 1 },
      { items: [{ email: 'peter@initech.com', state: 'Open' }], total: 1 },
      { items: ['peter@initech.com'], total: 1 },
      { items: [], total: 'peter@initech.com' },
    ];
    for (const body of bodies) {
      f.fault('list', { status: 200, body });
      const err = await failure(collect(source(f)));
      expect(err.code).toBe('RESPONSE_MALFORMED');
      expect(err.message).not.toContain('peter');
    }
    f.fault('read', { status: 200, body: '"peter@initech.com"' });
    f.addRequest({ id: 1 });
    expect((await failure(source(f).writeBack('1', outcome([{}]), signal()))).code).toBe('RESPONSE_MALFORMED');
    expect(f.count('update')).toBe(0);
  });

  it('an unreachable Dastra is HTTP_NETWORK; an abort stops a Retry-After wait', async () => {
    const f = await startDastraFake();
    const url = f.url;
    await f.close();
    const err = await failure(collect(makeDastraSource({ name: 'gone', baseUrl: url, workspaceId: 1, headers: {}, retry: FAST })));
    expect(err.code).toBe('HTTP_NETWORK');
    expect(err.message).toMatch(/source 'gone'/);

    const g = await fake();
    g.fault('list', { status: 429, retryAfter: 30 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('shutdown')), 100);
    const started = Date.now();
    const iter = source(g).list(ac.signal)[Symbol.asyncIterator]();
    await expect(iter.next()).rejects.toThrow('shutdown');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('fake Dastra', () => {
  it('refuses a PUT missing required fields, and a full PUT replaces the stored object', async () => {
    const f = await fake();
    const stored = f.addRequest({ id: 3 });
    const url = `${f.url}/v1/ws/${f.workspaceId}/DataSubjectRequests/3`;
    const put = (body: unknown) => request(url, { method: 'PUT', headers: { authorization: f.authorization, 'content-type': 'application/json' }, body: JSON.stringify(body) });

    const partial = await put({ id: 3, resolutionMessage: 'done' });
    expect(partial.statusCode).toBe(400);
    expect(Object.keys(((await partial.body.json()) as { errors: object }).errors)).toContain('state');
    expect(f.request(3)).toBe(stored);

    const full = without(structuredClone(stored), 'area', 'tags');
    const ok = await put({ ...full, resolutionMessage: 'done' });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
    expect(f.request(3)).toEqual({ ...full, resolutionMessage: 'done' });
    expect(f.request(3)).not.toHaveProperty('area');

    const noAuth = await request(url);
    expect(noAuth.statusCode).toBe(401);
    await noAuth.body.dump();
  });
});

describe('checkDastraOptions', () => {
  it('accepts the minimal and the full options', () => {
    expect(checkDastraOptions({ base_url: 'https://api.dastra.eu', workspace_id: '1234' })).toEqual([]);
    expect(checkDastraOptions({
      base_url: 'https://api.dastra.eu/', workspace_id: 1234, states: ['Open', 'Processing'], purposes: { Access: 'access', Erasure: 'delete', Opposition: 'optout' },
      identifiers: { email: 'email', userId: 'customer_id' }, poll_interval_seconds: 60, state_when_done: 'Closed', page_size: 1000, require_identity_validated: false,
    })).toEqual([]);
  });

  it('reports every problem with the option it concerns', () => {
    const fields = (o: unknown) => checkDastraOptions(o).map((p) => p.field);
    expect(checkDastraOptions('https://api.dastra.eu')).toEqual([{ field: '', message: expect.stringMatching(/must be an object/) }]);
    expect(fields({})).toEqual(['base_url', 'workspace_id']);
    for (const base_url of ['api.dastra.eu', 'ftp://api.dastra.eu', 'https://key:secret@api.dastra.eu', 'https://api.dastra.eu?x=1', 42]) {
      expect(fields({ base_url, workspace_id: '1' })).toEqual(['base_url']);
    }
    expect(fields({ base_url: 'http://127.0.0.1:8080', workspace_id: '' })).toEqual(['workspace_id']);
    expect(fields({ base_url: 'http://x', workspace_id: 0 })).toEqual(['workspace_id']);

    const ok = { base_url: 'https://api.dastra.eu', workspace_id: '1' };
    expect(fields({ ...ok, states: 'Open' })).toEqual(['states']);
    expect(fields({ ...ok, states: [] })).toEqual(['states']);
    expect(fields({ ...ok, states: ['Open', 'Done', 'Open'] })).toEqual(['states.1', 'states.2']);
    expect(fields({ ...ok, purposes: ['Access'] })).toEqual(['purposes']);
    expect(fields({ ...ok, purposes: { Access: 'read', Erase: 'delete', Opposition: 'identifiers' } })).toEqual(['purposes.Access', 'purposes.Erase', 'purposes.Opposition']);
    expect(fields({ ...ok, identifiers: {} })).toEqual(['identifiers']);
    expect(fields({ ...ok, identifiers: { email: 'e-mail', 'a b': 'x', userId: 3 } })).toEqual(['identifiers.email', 'identifiers.a b', 'identifiers.userId']);
    for (const poll_interval_seconds of [0, -5, 1.5, '60']) expect(fields({ ...ok, poll_interval_seconds })).toEqual(['poll_interval_seconds']);
    expect(fields({ ...ok, state_when_done: 'Done' })).toEqual(['state_when_done']);
    expect(fields({ ...ok, state_when_done: 3 })).toEqual(['state_when_done']);
    for (const page_size of [0, 1001, 10.5, '100']) expect(fields({ ...ok, page_size })).toEqual(['page_size']);
    expect(fields({ ...ok, require_identity_validated: 'yes' })).toEqual(['require_identity_validated']);

    const unknown = checkDastraOptions({ ...ok, api_key: 'x' });
    expect(unknown).toEqual([{ field: 'api_key', message: expect.stringContaining('base_url, workspace_id, states, purposes, identifiers, poll_interval_seconds, state_when_done, page_size, require_identity_validated') }]);
  });
});
