import { describe, it, expect, afterEach } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestAgent, useFixtures } from './helpers/agent.js';
import { makeLocalSink } from '../src/storage/local.js';
import type { JobResult } from '../src/engine/index.js';
import type { RequestType } from '../src/config/types.js';
import { startDatashipsFake } from './helpers/fakes/dataships.js';
import { startDxtraFake } from './helpers/fakes/dxtra.js';
import { startAxeptioFake } from './helpers/fakes/axeptio.js';
import { startOAuth2Fake } from './helpers/fakes/oauth2.js';

// End to end: each recipe in config/recipes, its production origins pointed at a local fake of the
// platform, run through the real engine (tokens, records, expect, paginate, graphql).

const fx = useFixtures();
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});
async function fake<T extends { close(): Promise<void> }>(started: Promise<T>): Promise<T> {
  const f = await started;
  closers.push(() => f.close());
  return f;
}

const A = 'alice@example.com';
const B = 'bob@example.com';
type Conn = Record<string, any>;

/** The recipe's text with every production origin replaced by the fake's URL, parsed. */
function recipe(file: string, origins: Record<string, string>): Conn {
  let text = readFileSync(new URL(`../config/recipes/${file}`, import.meta.url), 'utf8');
  for (const [from, to] of Object.entries(origins)) text = text.split(from).join(to);
  expect(text).not.toContain('https://'); // nothing left that would reach the internet
  return JSON.parse(text) as Conn;
}

/** An agent around the one connection, its secret stored at the connection's credentials_location. */
function agentFor(conn: Conn, secret: Record<string, string>) {
  fx.agent = makeTestAgent([conn], { secrets: { [conn.credentials_location]: secret } });
  return fx.agent;
}

let jobs = 0;
/** Run a job for `email`; access reports are read back as CSV text. */
async function job(type: RequestType, email: string): Promise<{ result: JobResult; csv: string[] }> {
  const out = join(fx.agent!.dir, `out-${++jobs}`);
  const result = await fx.agent!.engine.run({ type, identifiers: { email } }, type === 'access' ? { sink: makeLocalSink(out) } : {});
  const csv = (result.connections[0]?.reports ?? []).map((p) => readFileSync(p, 'utf8'));
  return { result, csv };
}

async function healthy(): Promise<void> {
  const [t] = await fx.agent!.engine.test();
  expect(t).toMatchObject({ healthy: true });
}

const NON_SECRETS = new Set(['email', 'page', 'page_size', 'offset', 'cursor']);
/** The secret keys a recipe's templates use: placeholders minus identifiers, paging variables and tokens. */
function secretKeys(conn: Conn): string[] {
  const templates: string[] = [];
  const collect = (q: Conn) => {
    templates.push(q.url, ...Object.values<string>(q.headers ?? {}), q.body ?? '', ...Object.values<string>(q.graphql?.variables ?? {}));
  };
  for (const t of Object.values<Conn>(conn.tokens ?? {})) collect(t.request);
  for (const list of Object.values<Conn[] | Record<string, Conn[]>>(conn.queries)) (Array.isArray(list) ? list : Object.values(list).flat()).forEach(collect);
  const names = templates.flatMap((t) => [...t.replace(/\{\{|\}\}/g, '').matchAll(/\{([A-Za-z_]\w*)\}/g)].map((m) => m[1]!));
  return [...new Set(names)].filter((n) => !NON_SECRETS.has(n) && !(n in (conn.tokens ?? {}))).sort();
}

describe('recipes: shape and documentation', () => {
  const docs = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  it.each([
    ['dataships.json', ['integration_id', 'secret_key']],
    ['dxtra.json', ['personal_access_token']],
    ['axeptio.json', ['axeptio_password', 'axeptio_username', 'project_id']],
    ['oauth2-client-credentials.json', ['client_basic_auth']],
  ])('%s: one live APIProxy connection with a test query free of identifiers; its secret keys are documented', (file, keys) => {
    const conn = JSON.parse(readFileSync(new URL(`../config/recipes/${file}`, import.meta.url), 'utf8')) as Conn;
    expect(conn).toMatchObject({ mode: 'live', connector_type: 'APIProxy', credentials_location: expect.any(String), tokens: expect.any(Object) });
    expect(conn.queries.test.length).toBeGreaterThan(0);
    expect(JSON.stringify(conn.queries.test)).not.toMatch(/\{email\}/);
    expect(secretKeys(conn)).toEqual(keys);
    for (const k of keys) expect(docs).toContain(`\`${k}\``);
  });
});

describe('recipe: Dataships (per-subject token)', () => {
  async function setup() {
    const f = await fake(startDatashipsFake());
    f.addPerson(A);
    f.addPerson(B);
    agentFor(recipe('dataships.json', { 'https://api.dataships.io': f.url }), { secret_key: f.secretKey, integration_id: '69' });
    return f;
  }

  it('health check uses the secret key alone, no subject token', async () => {
    const f = await setup();
    await healthy();
    expect(f.counters.logins).toBe(0);
    expect(f.calls.map((c) => [c.path, c.headers.authorization])).toEqual([['/controller/detail/get', `Bearer ${f.secretKey}`]]);
  });

  it("access: one token for the subject, then A's data fields, table rows and documents, nothing of B's", async () => {
    const f = await setup();
    const { result, csv } = await job('access', A);
    expect(result.status).toBe('succeeded');
    expect(f.counters.logins).toBe(1);
    expect(f.calls[0]).toMatchObject({ method: 'POST', path: '/subject/token', body: 'email=alice%40example.com' });
    expect(f.calls[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const subjectCalls = f.calls.slice(1);
    expect(subjectCalls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /subject/data/69', 'GET /subject/table/get', 'GET /subject/document']);
    for (const c of subjectCalls) expect(c).toMatchObject({ subject: A, headers: { token: f.tokenFor(A), authorization: `Bearer ${f.secretKey}` } });
    expect(csv).toHaveLength(5); // 3 data fields, 1 table row, 1 document
    const all = csv.join('\n');
    for (const s of ['value,alice@example.com', 'value,Alice', 'value,Aliceson', 'Overdraft Allowance,€1000 for Alice', 'data_name,Contract of Alice']) expect(all).toContain(s);
    expect(all.toLowerCase()).not.toContain('bob');
  });

  it("per subject: B's job gets B's own token and never A's", async () => {
    const f = await setup();
    await job('access', A);
    const before = f.calls.length;
    const { result, csv } = await job('access', B);
    expect(result.status).toBe('succeeded');
    expect(f.counters.logins).toBe(2);
    expect(f.tokenFor(B)).not.toBe(f.tokenFor(A));
    const bCalls = f.calls.slice(before).filter((c) => c.path !== '/subject/token');
    expect(bCalls.length).toBe(3);
    for (const c of bCalls) expect(c).toMatchObject({ subject: B, headers: { token: f.tokenFor(B) } });
    expect(csv.join('\n')).toContain('value,bob@example.com');
    expect(csv.join('\n').toLowerCase()).not.toContain('alice');
  });

  it('concurrent jobs for A and B: two logins, and each report set holds only its own subject', async () => {
    const f = await setup();
    const [a, b] = await Promise.all([job('access', A), job('access', B)]);
    expect(f.counters.logins).toBe(2);
    expect(a.csv.join('\n')).toContain(`value,${A}`);
    expect(a.csv.join('\n').toLowerCase()).not.toContain('bob');
    expect(b.csv.join('\n')).toContain(`value,${B}`);
    expect(b.csv.join('\n').toLowerCase()).not.toContain('alice');
  });

  it('delete: files the erasure request; an envelope other than success fails with RESPONSE_UNEXPECTED', async () => {
    const f = await setup();
    expect((await job('delete', A)).result.status).toBe('succeeded');
    expect(f.person(A)!.erasureRequests).toBe(1);
    expect(f.person(B)!.erasureRequests).toBe(0);
    f.setErasureAnswer({ code: 200, status: 'success', response: false });
    const { result } = await job('delete', B);
    expect(result.connections[0]).toMatchObject({ status: 'failed', error: { code: 'RESPONSE_UNEXPECTED' } });
  });

  it('tokens expired early: the next job succeeds with exactly one new login', async () => {
    const f = await setup();
    await job('access', A);
    f.expireTokens();
    const { result, csv } = await job('access', A);
    expect(result.status).toBe('succeeded');
    expect(csv).toHaveLength(5);
    expect(f.counters.logins).toBe(2);
  });
});

describe('recipe: Dxtra (PAT → JWT, GraphQL)', () => {
  async function setup(opts: Parameters<typeof startDxtraFake>[0] = {}) {
    const f = await fake(startDxtraFake(opts));
    f.addPerson(A);
    f.addPerson(B);
    const origins = { 'https://auth.dxtra.ai': f.url, 'https://api.dxtra.ai': f.url };
    agentFor(recipe('dxtra.json', origins), { personal_access_token: f.personalAccessToken });
    return f;
  }
  const graphqlCalls = (f: Awaited<ReturnType<typeof setup>>) => f.calls.filter((c) => c.path === '/v1/graphql');

  it('health check signs in with the PAT and reads the data controller as role user', async () => {
    const f = await setup();
    await healthy();
    expect(f.counters.logins).toBe(1);
    expect(JSON.parse(f.calls[0]!.body)).toEqual({ personalAccessToken: f.personalAccessToken });
    expect(f.calls[1]).toMatchObject({ path: '/api/rest/getdatacontrollerdetails', role: 'user', headers: { authorization: expect.stringMatching(/^Bearer ey/) } });
  });

  it("access: the data subject and its consent values for A, as role user, nothing of B's", async () => {
    const f = await setup();
    const { result, csv } = await job('access', A);
    expect(result.status).toBe('succeeded');
    const calls = graphqlCalls(f);
    expect(calls).toHaveLength(2);
    for (const c of calls) {
      expect(c).toMatchObject({ method: 'POST', role: 'user', headers: { 'x-hasura-role': 'user' } });
      expect(c.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(c.body).variables).toEqual({ email: A });
    }
    expect(JSON.parse(calls[0]!.body).operationName).toBe('DsrDataSubjects');
    expect(csv).toHaveLength(3); // the subject, two consent values
    const all = csv.join('\n');
    const subject = f.subjects().find((s) => s.email === A)!;
    for (const s of [`email,${A}`, `did,${subject.did}`, `dataController_title,${f.controller.title}`, `value,newsletter: granted (${A})`, `dataSubject_id,${subject.id}`]) expect(all).toContain(s);
    expect(all).not.toContain('bob');
  });

  it('one shared JWT serves two jobs and the health check', async () => {
    const f = await setup();
    await job('access', A);
    await job('access', B);
    await healthy();
    expect(f.counters.logins).toBe(1);
  });

  it('concurrent jobs wait for one login', async () => {
    const f = await setup();
    const results = await Promise.all([job('access', A), job('access', B), job('access', A)]);
    expect(results.map((r) => r.result.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(f.counters.logins).toBe(1);
  });

  it('delete: the mutation removes A and only A', async () => {
    const f = await setup();
    expect((await job('delete', A)).result.status).toBe('succeeded');
    expect(f.subjects().map((s) => s.email)).toEqual([B]);
    expect((await job('access', A)).csv).toEqual([]);
  });

  it('JWT revoked early: a 401, one new login, and the job succeeds', async () => {
    const f = await setup();
    await job('access', A);
    f.expireTokens();
    const { result, csv } = await job('access', A);
    expect(result.status).toBe('succeeded');
    expect(csv).toHaveLength(3);
    expect(f.counters.logins).toBe(2);
  });

  // Hasura answers a bad JWT with 200 and {"errors": [...]}, no data: no re-login, but GRAPHQL_ERRORS (not a records error).
  it('a JWT refused with 200 + invalid-jwt (as Hasura does) fails the job with GRAPHQL_ERRORS', async () => {
    const f = await setup({ invalidJwtStatus: 200 });
    await job('access', A);
    f.expireTokens();
    const { result } = await job('access', A);
    expect(result.connections[0]).toMatchObject({ status: 'failed', error: { code: 'GRAPHQL_ERRORS' } });
  });
});

describe('recipe: Axeptio (15-day sign-in token, ?access_token=, page/perPage)', () => {
  async function setup() {
    const f = await fake(startAxeptioFake());
    f.addPerson(A, 105);
    f.addPerson(B, 2);
    agentFor(recipe('axeptio.json', { 'https://api.axept.io': f.url }), { axeptio_username: f.username, axeptio_password: f.password, project_id: f.projectId });
    return f;
  }

  it('health check signs in and reads the project with the token in the query string', async () => {
    const f = await setup();
    await healthy();
    expect(JSON.parse(f.calls[0]!.body)).toEqual({ email: f.username, password: f.password });
    expect(f.calls[1]).toMatchObject({ path: `/v1/vault/projects/${f.projectId}`, query: { access_token: expect.any(String) } });
    expect(f.calls[1]!.headers.authorization).toBeUndefined();
  });

  it("access: every page of A's consent proofs (page/perPage), nothing of B's", async () => {
    const f = await setup();
    const { result, csv } = await job('access', A);
    expect(result.status).toBe('succeeded');
    const pages = f.calls.filter((c) => c.path.startsWith('/v1/app/consents/'));
    expect(pages.map((c) => [c.query.page, c.query.perPage, c.query.identifier])).toEqual([['1', '100', A], ['2', '100', A]]);
    for (const c of pages) expect(c.query.access_token).toBeTruthy();
    expect(csv).toHaveLength(105);
    const all = csv.join('\n');
    for (const c of f.consents(A)) expect(all).toContain(`token,${c.token}`);
    expect(all).not.toContain('bob');
  });

  it('one shared token serves two jobs', async () => {
    const f = await setup();
    await job('access', A);
    const { csv } = await job('access', B);
    expect(csv).toHaveLength(2);
    expect(f.counters.logins).toBe(1);
  });

  // The seed: "Any unauthenticated request on a private resource will result in a 403 HTTP Error".
  // A 403 makes the engine re-read the secret and fetch the tokens again, once.
  it('token revoked early (403, as the seed says): the next job succeeds with exactly one new login', async () => {
    const f = await setup();
    await job('access', B);
    f.expireTokens();
    const { result, csv } = await job('access', B);
    expect(result.status).toBe('succeeded');
    expect(csv).toHaveLength(2);
    expect(f.counters.logins).toBe(2);
  });
});

describe('recipe: OAuth2 client credentials', () => {
  async function setup() {
    const f = await fake(startOAuth2Fake());
    f.addPerson(A, 150);
    f.addPerson(B, 1);
    const origins = { 'https://auth.example.com': f.url, 'https://api.example.com': f.url };
    agentFor(recipe('oauth2-client-credentials.json', origins), { client_basic_auth: f.basic });
    return f;
  }

  it('health check: an RFC 6749 §4.4 token request, then the API with the bearer token', async () => {
    const f = await setup();
    await healthy();
    expect(f.calls[0]).toMatchObject({ method: 'POST', path: '/oauth2/token', body: 'grant_type=client_credentials', headers: { authorization: `Basic ${f.basic}` } });
    expect(f.calls[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(f.calls[1]).toMatchObject({ path: '/v1/health', headers: { authorization: expect.stringMatching(/^Bearer /) } });
  });

  it("access: records under /data from every page, nothing of B's", async () => {
    const f = await setup();
    const { result, csv } = await job('access', A);
    expect(result.status).toBe('succeeded');
    const pages = f.calls.filter((c) => c.path === '/v1/subjects/records');
    expect(pages.map((c) => [c.query.page, c.query.per_page, c.query.email])).toEqual([['1', '100', A], ['2', '100', A]]);
    expect(csv).toHaveLength(150);
    expect(csv[0]).toBe(`id,1\nemail,${A}\nkind,login\ndetail_n,1\ndetail_note,record 1 of ${A}\n`);
    expect(csv.join('\n')).not.toContain('bob');
  });

  it('delete: removes A; an unknown subject (404) still succeeds', async () => {
    const f = await setup();
    expect((await job('delete', A)).result.status).toBe('succeeded');
    expect(f.records(A)).toBeUndefined();
    expect(f.records(B)).toHaveLength(1);
    expect((await job('delete', 'nobody@example.com')).result.status).toBe('succeeded');
  });

  it('one shared token serves two jobs; expired early, the next job logs in exactly once more', async () => {
    const f = await setup();
    await job('access', A);
    await job('access', B);
    expect(f.counters.logins).toBe(1);
    f.expireTokens();
    const { result, csv } = await job('access', B);
    expect(result.status).toBe('succeeded');
    expect(csv).toHaveLength(1);
    expect(f.counters.logins).toBe(2);
  });
});
