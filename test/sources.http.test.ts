import { listConfigProblems } from '../src/config/validate.js';
import { describe, it, expect, afterEach } from '@jest/globals';
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import { checkHttpSourceOptions, makeHttpSource, type HttpSourceOptions } from '../src/sources/http.js';
import { summarize } from '../src/sources/dastra.js';
import type { JobOutcome, PendingRequest, RequestSource } from '../src/sources/types.js';
import { makeSecretsCache, type Secret } from '../src/credentials/source.js';
import { ErrorCodes, isAgentError, type AgentError } from '../src/errors.js';
import { startTarget, json, type Target } from './helpers/target.js';
import { startDxtraRequestsFake, type DxtraRequestsFake } from './helpers/fakes/dxtra-requests.js';

// The declarative HTTP request source against real local servers: a small platform scripted here
// (login, paged list, finish endpoint) and the fake Dxtra extended with rights requests.

const FAST = { retries: 2, minDelayMs: 5, maxDelayMs: 20 };
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

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

function secretsOf(secret: Secret) {
  return makeSecretsCache({ get: async () => secret }, { ttlMs: 60_000 });
}

// ---------------------------------------------------------------- a scripted platform

type Req = Record<string, unknown>;

interface Platform {
  target: Target;
  url: string;
  apiKey: string;
  requests: Req[];
  logins: number;
  /** Bearer tokens the list endpoint accepts. */
  valid: Set<string>;
  lists: Array<{ page: string | null; size: string | null; authorization: string | undefined }>;
  finishes: Array<{ headers: http.IncomingHttpHeaders; body: string }>;
}

async function platform(): Promise<Platform> {
  const p: Platform = { target: undefined as unknown as Target, url: '', apiKey: 'key-123456', requests: [], logins: 0, valid: new Set(), lists: [], finishes: [] };
  p.target = await startTarget((req, res, { body }) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST' && u.pathname === '/login') {
      const given = (JSON.parse(body) as { key?: string }).key;
      if (given !== p.apiKey) return json(res, 401, { error: 'bad key' });
      p.logins++;
      const token = `tok-${p.logins}-${Math.random().toString(36).slice(2)}`;
      p.valid.add(token);
      return json(res, 200, { auth: { token, ttl: 3600 } });
    }
    if (req.method === 'GET' && u.pathname === '/v2/requests') {
      const authorization = req.headers.authorization;
      p.lists.push({ page: u.searchParams.get('page'), size: u.searchParams.get('size'), authorization });
      if (!p.valid.has(String(authorization).replace(/^Bearer /, ''))) return json(res, 401, { error: 'expired' });
      const page = Number(u.searchParams.get('page'));
      const size = Number(u.searchParams.get('size'));
      return json(res, 200, { meta: { total: p.requests.length }, data: { items: p.requests.slice((page - 1) * size, page * size) } });
    }
    if (req.method === 'POST' && u.pathname === '/v2/finish') {
      p.finishes.push({ headers: req.headers, body });
      return json(res, 200, { ok: true });
    }
    json(res, 404, { error: 'not found' });
  });
  p.url = p.target.url;
  closers.push(() => p.target.close());
  return p;
}

function platformOptions(p: Platform, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    tokens: {
      api: {
        request: { url: `${p.url}/login`, verb: 'POST', verify_ssl: 'true', headers: { 'Content-Type': 'application/json' }, body: '{{"key": "{api_key}"}}' },
        value: '/auth/token',
        expires_in: '/auth/ttl',
      },
    },
    list: {
      url: `${p.url}/v2/requests?page={page}&size={page_size}`,
      verb: 'GET',
      verify_ssl: 'true',
      headers: { Authorization: 'Bearer {api}' },
      records: '/data/items',
      paginate: { style: 'page', size: 2, total: '/meta/total', max_pages: 50 },
    },
    fields: {
      id: '/id',
      type: { pointer: '/requestType', values: { ACCESS: 'access', DELETION: 'delete', DO_NOT_SELL: 'optout' } },
      identifiers: { email: '/dataSubject/email', user_id: '/dataSubject/userId' },
    },
    finish: {
      url: `${p.url}/v2/finish`,
      verb: 'POST',
      verify_ssl: 'true',
      headers: { Authorization: 'Bearer {api}', 'Content-Type': 'application/json' },
      body: '{{"request": "{request_id}", "jobs": "{job_id}", "status": "{job_status}", "message": "{summary}"}}',
    },
    ...extra,
  };
}

function source(p: Platform, o: Partial<HttpSourceOptions> = {}, extra: Record<string, unknown> = {}): RequestSource {
  return makeHttpSource({
    name: 'acme-privacy',
    options: platformOptions(p, extra),
    secrets: secretsOf({ api_key: p.apiKey }),
    credentialsLocation: 'acme',
    retry: FAST,
    ...o,
  });
}

const outcome = (jobId: string, type: JobOutcome['type'], status: JobOutcome['status']): JobOutcome => ({
  jobId,
  type,
  status,
  connections: [{ name: 'Billing', status: status === 'failed' ? 'failed' : 'succeeded', reports: type === 'access' ? 2 : 0 }],
  storage: 's3://dsr-reports/acme',
});

describe('HTTP source: listing', () => {
  it('logs in once for two polls, reads every page, maps fields through the value map and skips unmapped types', async () => {
    const p = await platform();
    p.requests.push(
      { id: 'r1', requestType: 'ACCESS', dataSubject: { email: 'peter@initech.com', userId: 42 } },
      { id: 'r2', requestType: 'DELETION', dataSubject: { email: '  milton@initech.com ' } },
      { id: 'r3', requestType: 'RECTIFICATION', dataSubject: { email: 'bill@initech.com' } },
      { id: 4, requestType: 'DO_NOT_SELL', dataSubject: { userId: 'u-7' } },
      { id: 'r5', requestType: 'ACCESS', dataSubject: { email: '', userId: null } },
    );
    const s = source(p);
    const first = await collect(s);
    expect(first).toEqual([
      { id: 'r1', jobs: [{ type: 'access', identifiers: { email: 'peter@initech.com', user_id: '42' } }] },
      { id: 'r2', jobs: [{ type: 'delete', identifiers: { email: 'milton@initech.com' } }] },
      { id: '4', jobs: [{ type: 'optout', identifiers: { user_id: 'u-7' } }] },
      { id: 'r5', jobs: [], attention: 'no identifier: nothing at "/dataSubject/email", "/dataSubject/userId" holds a value' },
    ]);
    // 5 requests, pages of 2: 3 pages, stopped by total.
    expect(p.lists.map((l) => [l.page, l.size])).toEqual([['1', '2'], ['2', '2'], ['3', '2']]);
    expect(p.logins).toBe(1);
    expect(new Set(p.lists.map((l) => l.authorization)).size).toBe(1);

    expect(await collect(s)).toEqual(first);
    expect(p.lists).toHaveLength(6);
    expect(p.logins).toBe(1); // the token is shared across polls
  });

  it('one job per mapped type when the type is an array; an eligibility filter; each request once', async () => {
    const p = await platform();
    p.requests.push(
      { id: 'a', requestType: ['ACCESS', 'DELETION', 'ACCESS', 'RECTIFICATION'], status: 'open', dataSubject: { email: 'a@x.io' } },
      { id: 'b', requestType: 'ACCESS', status: 'closed', dataSubject: { email: 'b@x.io' } },
      { id: 'a', requestType: 'ACCESS', status: 'open', dataSubject: { email: 'a@x.io' } },
      { id: 'c', requestType: 'DELETION', dataSubject: { email: 'c@x.io' } },
    );
    const got = await collect(source(p, {}, { eligible: { pointer: '/status', values: ['open'] } }));
    expect(got.map((r) => [r.id, r.jobs.map((j) => j.type)])).toEqual([['a', ['access', 'delete']]]);
  });

  it('a 401 to the list drops the token, logs in again once and goes on', async () => {
    const p = await platform();
    p.requests.push({ id: 'r1', requestType: 'ACCESS', dataSubject: { email: 'peter@initech.com' } });
    const s = source(p);
    expect(await collect(s)).toHaveLength(1);
    p.valid.clear(); // every token issued so far is refused now
    expect((await collect(s)).map((r) => r.id)).toEqual(['r1']);
    expect(p.logins).toBe(2);
    expect(p.lists.map((l) => l.authorization === p.lists[0]!.authorization)).toEqual([true, true, false]);
  });

  it('a list that keeps answering 401 fails with the status, naming the source, never the token', async () => {
    const p = await platform();
    p.target.script((req, res) => (req.url === '/login' ? json(res, 200, { auth: { token: 'tok-never-valid', ttl: 60 } }) : json(res, 401, {})));
    const err = await failure(collect(source(p)));
    expect(err.code).toBe(ErrorCodes.HTTP_STATUS);
    expect(err.status).toBe(401);
    expect(err.message).toMatch(/^the request list of source 'acme-privacy' failed: /);
    expect(err.message).not.toContain('tok-never-valid');
  });

  it('a record without an id fails the listing as malformed', async () => {
    const p = await platform();
    p.requests.push({ requestType: 'ACCESS', dataSubject: { email: 'peter@initech.com' } });
    const err = await failure(collect(source(p)));
    expect(err.code).toBe(ErrorCodes.RESPONSE_MALFORMED);
    expect(err.message).toContain('no id at "/id"');
    expect(err.message).not.toContain('peter');
  });

  it('a reader that stops early stops the listing: no further pages are read', async () => {
    const p = await platform();
    for (let i = 0; i < 600; i++) p.requests.push({ id: `r${i}`, requestType: 'ACCESS', dataSubject: { email: `p${i}@x.io` } });
    const s = source(p, {}, { list: { ...(platformOptions(p).list as object), paginate: { style: 'page', size: 100, total: '/meta/total', max_pages: 50 } } });
    const seen: string[] = [];
    for await (const r of s.list(signal())) {
      seen.push(r.id);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(['r0', 'r1', 'r2']);
    expect(p.lists.length).toBeLessThanOrEqual(2);
  });
});

describe('HTTP source: finish', () => {
  it('sends request_id, job_id, job_status and the summary; never an identifier', async () => {
    const p = await platform();
    p.requests.push({ id: 'r1', requestType: ['ACCESS', 'DELETION'], dataSubject: { email: 'peter@initech.com' } });
    const s = source(p);
    const [r] = await collect(s);
    const jobs = [outcome('job-1', 'access', 'succeeded'), outcome('job-2', 'delete', 'failed')];
    await s.writeBack(r!.id, { jobs }, signal());
    expect(p.finishes).toHaveLength(1);
    const body = JSON.parse(p.finishes[0]!.body) as Record<string, string>;
    expect(body).toEqual({ request: 'r1', jobs: 'job-1,job-2', status: 'partial', message: summarize({ jobs }) });
    expect(body.message).toContain('job-1');
    expect(p.finishes[0]!.body).not.toContain('peter');
    expect(p.finishes[0]!.headers.authorization).toBe(p.lists[0]!.authorization);
    expect(p.logins).toBe(1);

    await s.writeBack('r1', { jobs: [outcome('job-3', 'access', 'succeeded')] }, signal());
    expect(JSON.parse(p.finishes[1]!.body)).toMatchObject({ jobs: 'job-3', status: 'succeeded' });
  });

  it('an attention write-back: job_status "attention", no job id, the attention text as summary', async () => {
    const p = await platform();
    const s = source(p);
    await s.writeBack('r9', { attention: 'no identifier: nothing at "/dataSubject/email" holds a value' }, signal());
    expect(JSON.parse(p.finishes[0]!.body)).toEqual({
      request: 'r9',
      jobs: '',
      status: 'attention',
      message: 'dsr-agent could not run this request: no identifier: nothing at "/dataSubject/email" holds a value',
    });
  });

  it('a refused finish fails with the status, naming the request', async () => {
    const p = await platform();
    p.target.script((req, res, { body }) => (req.url === '/login' ? json(res, 200, { auth: { token: `t${body.length}`, ttl: 60 } }) : json(res, 422, { error: 'no' })));
    const err = await failure(source(p).writeBack('r1', { jobs: [outcome('job-1', 'access', 'succeeded')] }, signal()));
    expect(err).toMatchObject({ code: ErrorCodes.HTTP_STATUS, status: 422 });
    expect(err.message).toMatch(/^the finish query for request r1 of source 'acme-privacy' failed: /);
  });

  it('takes the secret itself and tokens given next to options (a source config\'s own tokens)', async () => {
    const p = await platform();
    p.requests.push({ id: 'r1', requestType: 'ACCESS', dataSubject: { email: 'peter@initech.com' } });
    const { tokens, ...rest } = platformOptions(p);
    const s = makeHttpSource({ name: 'acme-privacy', options: rest, tokens, secret: { api_key: p.apiKey }, retry: FAST });
    expect((await collect(s)).map((r) => r.id)).toEqual(['r1']);
    await s.writeBack('r1', { jobs: [outcome('job-1', 'access', 'succeeded')] }, signal());
    expect(p.logins).toBe(1);
    expect(p.finishes).toHaveLength(1);
    expect(() => makeHttpSource({ name: 'x', options: platformOptions(p), tokens, secret: {}, retry: FAST })).toThrow(/tokens are given both/);
  });

  it('a secret key named like a finish variable is refused before anything is sent', async () => {
    const p = await platform();
    const s = source(p, { secrets: secretsOf({ api_key: p.apiKey, summary: 'x' }) });
    const err = await failure(s.writeBack('r1', { attention: 'x' }, signal()));
    expect(err.code).toBe(ErrorCodes.IDENTIFIER_COLLISION);
    expect(p.finishes).toHaveLength(0);
  });
});

describe('HTTP source: option checks', () => {
  it('a valid set of options has no problem', async () => {
    const p = await platform();
    expect(checkHttpSourceOptions(platformOptions(p))).toEqual([]);
  });

  it('reports missing and malformed options, fields and queries under the source option that holds them', () => {
    expect(checkHttpSourceOptions(null)).toEqual([{ field: '', message: expect.stringContaining('must be an object') }]);
    const fields = (o: unknown) => checkHttpSourceOptions(o).map((p) => p.field);
    expect(fields({})).toEqual(['list', 'finish', 'fields']);

    const q = { url: 'https://api.example.com/requests', verb: 'GET', verify_ssl: 'true' };
    const problems = checkHttpSourceOptions({
      list: { url: 'api.example.com/requests?page={page}', verb: 'GET', verify_ssl: 'true', records: 'items', paginate: { style: 'cursor', max_pages: 10 }, headers: { 'X-Note': '{summary}' } },
      finish: { ...q, verb: 'POST', records: '/x' },
      tokens: { summary: { request: { url: 'https://auth.example.com/login', verb: 'POST' }, value: '/token' } },
      fields: { id: 'id', type: { pointer: '/type', values: { ACCESS: 'read' } }, identifiers: { '1email': '/email' }, extra: '/x' },
      eligible: { pointer: '/status', values: [] },
      poll_interval_seconds: 0,
      color: 'blue',
    });
    const byField = (f: string) => problems.filter((p) => p.field === f).map((p) => p.message);
    expect(byField('color')[0]).toMatch(/unknown option/);
    expect(byField('list.url')[0]).toMatch(/absolute http/);
    expect(byField('list.records')[0]).toMatch(/JSON pointer/);
    expect(byField('list.paginate.cursor')[0]).toMatch(/needs cursor/);
    expect(byField('list.paginate').join()).toMatch(/fills \{cursor\}/);
    expect(byField('list')[0]).toMatch(/\{summary\} has a value in the finish query only/);
    expect(byField('finish.records')[0]).toBe('records applies to the list query only, not to the finish query; remove it');
    expect(byField('tokens.summary.request.verify_ssl')[0]).toMatch(/required field 'verify_ssl'/);
    expect(byField('tokens.summary')[0]).toMatch(/template variable of the finish query/);
    expect(byField('fields.id')[0]).toMatch(/not a JSON pointer/);
    expect(byField('fields.type.values.ACCESS')[0]).toBe('must be one of access, delete, optout');
    expect(byField('fields.identifiers.1email')[0]).toMatch(/not an identifier name/);
    expect(byField('fields.extra')[0]).toMatch(/unknown field/);
    expect(byField('eligible.values')[0]).toMatch(/non-empty array/);
    expect(byField('poll_interval_seconds')[0]).toMatch(/positive integer/);
    // Every problem is under an option of the source, never a path of the synthetic connection.
    for (const p of problems) expect(p.field).not.toMatch(/connections|queries/);
  });

  it('makeHttpSource refuses invalid options with CONFIG_INVALID listing every problem', () => {
    let err: unknown;
    try {
      makeHttpSource({ name: 'x', options: { fields: {} }, secrets: secretsOf({}), credentialsLocation: 'x', retry: FAST });
    } catch (e) {
      err = e;
    }
    expect(isAgentError(err, ErrorCodes.CONFIG_INVALID)).toBe(true);
    const e = err as AgentError;
    expect(e.message).toMatch(/^the options of source 'x' are invalid \(\d+ problems\)/);
    expect(e.problems!.map((p) => p.path)).toEqual(expect.arrayContaining(['/options/list', '/options/finish', '/options/fields/id', '/options/fields/type', '/options/fields/identifiers']));
  });
});

describe('recipe: Dxtra request source', () => {
  type Recipe = { name: string; type: string; credentials_location: string; tokens: Record<string, unknown>; options: Record<string, unknown> };
  const raw = readFileSync(new URL('../config/recipes/dxtra-source.json', import.meta.url), 'utf8');

  function recipe(url: string): Recipe {
    const text = raw.split('https://auth.dxtra.ai').join(url).split('https://api.dxtra.ai').join(url);
    expect(text).not.toContain('https://');
    return JSON.parse(text) as Recipe;
  }

  async function setup(): Promise<{ f: DxtraRequestsFake; s: RequestSource }> {
    const f = await startDxtraRequestsFake();
    closers.push(() => f.close());
    const r = recipe(f.url);
    const s = makeHttpSource({ name: r.name, options: r.options, tokens: r.tokens, secrets: secretsOf({ personal_access_token: f.inner.personalAccessToken }), credentialsLocation: r.credentials_location, retry: FAST });
    return { f, s };
  }

  it('is an HTTP source whose options pass the checks', () => {
    const r = JSON.parse(raw) as Recipe;
    expect(r).toMatchObject({ type: 'HTTP', credentials_location: 'dsr-agent/dxtra' });
    expect(checkHttpSourceOptions({ ...r.options, tokens: r.tokens })).toEqual([]);
    // As a config's request source: every load-time check passes.
    expect(listConfigProblems({ connections: [], platform: { credentials_manager: { provider: 'JSONFile', options: { filename: 's.json' } } }, request_sources: [r] })).toEqual([]);
  });

  it('end to end: PAT → JWT once, the REST list as role user, eligible requests mapped, the outcome written by the mutation', async () => {
    const { f, s } = await setup();
    const access = f.addRequest({ requestType: 'access', email: 'peter@initech.com' });
    const erasure = f.addRequest({ requestType: 'erasure', email: 'milton@initech.com' });
    f.addRequest({ requestType: 'access', status: 'submitted', email: 'unverified@initech.com' });
    f.addRequest({ requestType: 'rectify', email: 'bill@initech.com' });
    const orphan = f.addRequest({ requestType: 'export', email: null });

    const listed = await collect(s);
    expect(listed).toEqual([
      { id: access.id, jobs: [{ type: 'access', identifiers: { email: 'peter@initech.com' } }] },
      { id: erasure.id, jobs: [{ type: 'delete', identifiers: { email: 'milton@initech.com' } }] },
      { id: orphan.id, jobs: [], attention: 'no identifier: nothing at "/dataSubject/email" holds a value' },
    ]);
    expect(f.inner.counters.logins).toBe(1);
    expect(f.calls[0]).toMatchObject({ method: 'GET', path: '/api/rest/getdatasubjectsrightsrequests', role: 'user' });

    const jobs = [outcome('job-77', 'access', 'succeeded')];
    await s.writeBack(access.id, { jobs }, signal());
    await s.writeBack(orphan.id, { attention: listed[2]!.attention! }, signal());
    const finish = f.calls.filter((c) => c.path === '/v1/graphql');
    expect(finish).toHaveLength(2);
    expect(finish.every((c) => c.role === 'user')).toBe(true);
    expect(finish[0]!.body).not.toContain('peter');
    const rows = Object.fromEntries(f.requests().map((r) => [r.id, r]));
    expect(rows[access.id]).toMatchObject({ status: 'review', notes: summarize({ jobs }) });
    expect(rows[orphan.id]!.notes).toMatch(/^dsr-agent could not run this request: no identifier/);
    expect(rows[erasure.id]).toMatchObject({ status: 'verified', notes: null });
    expect(f.inner.counters.logins).toBe(1);

    // Written back: no longer eligible.
    expect((await collect(s)).map((r) => r.id)).toEqual([erasure.id]);
  });

  it('an expired JWT: the list logs in again once and goes on', async () => {
    const { f, s } = await setup();
    f.addRequest({ requestType: 'access', email: 'peter@initech.com' });
    expect(await collect(s)).toHaveLength(1);
    f.inner.expireTokens();
    expect(await collect(s)).toHaveLength(1);
    expect(f.inner.counters.logins).toBe(2);
  });
});
