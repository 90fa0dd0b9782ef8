import { describe, it, expect, afterEach } from '@jest/globals';
import { request } from 'undici';
import { startDatashipsFake } from './helpers/fakes/dataships.js';
import { startDxtraFake } from './helpers/fakes/dxtra.js';
import { startAxeptioFake } from './helpers/fakes/axeptio.js';
import { startOAuth2Fake } from './helpers/fakes/oauth2.js';

// The fakes the recipe tests run against, proven on their own with plain HTTP requests.

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});
async function use<T extends { close(): Promise<void> }>(fake: Promise<T>): Promise<T> {
  const f = await fake;
  closers.push(() => f.close());
  return f;
}

async function call(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const res = await request(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text ? (JSON.parse(text) as any) : undefined };
}

describe('Dataships fake', () => {
  it('issues a per-subject token for an email and serves only that subject with it', async () => {
    const f = await use(startDatashipsFake());
    f.addPerson('alice@example.com');
    f.addPerson('bob@example.com');
    const auth = { Authorization: `Bearer ${f.secretKey}` };
    expect((await call(`${f.url}/controller/detail/get`)).status).toBe(401);
    expect((await call(`${f.url}/controller/detail/get`, { headers: auth })).json).toMatchObject({ code: 200, status: 'success' });

    const login = await call(`${f.url}/subject/token`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'email=alice%40example.com' });
    expect(login.json).toMatchObject({ code: 200, status: 'success', response: { token: expect.any(String) } });
    expect(login.json.response.expires_at - Date.now() / 1000).toBeGreaterThan(3590);
    const token = login.json.response.token as string;
    expect(f.counters.logins).toBe(1);

    const data = await call(`${f.url}/subject/data/69`, { method: 'POST', headers: { ...auth, token } });
    expect(data.json.response.map((d: { value: string }) => d.value)).toEqual(['alice@example.com', 'Alice', 'Aliceson']);
    expect(JSON.stringify(data.json)).not.toContain('bob');
    const rows = await call(`${f.url}/subject/table/get?display_name=1`, { headers: { ...auth, token } });
    expect(rows.json.response).toEqual([{ id: '5', Date: '1584037866', 'Overdraft Allowance': '€1000 for Alice' }]);
    expect((await call(`${f.url}/subject/document`, { headers: { ...auth, token } })).json.response[0].data.name).toBe('Contract of Alice');
    expect((await call(`${f.url}/subject/data/69`, { method: 'POST', headers: auth })).status).toBe(401);
    expect((await call(`${f.url}/subject/data/999`, { method: 'POST', headers: { ...auth, token } })).status).toBe(404);

    f.expireTokens();
    expect((await call(`${f.url}/subject/document`, { headers: { ...auth, token } })).json).toEqual({ code: 401, status: 'error', response: { message: expect.any(String) } });
  });

  it('accepts the email as multipart/form-data (curl -F) and records erasure requests', async () => {
    const f = await use(startDatashipsFake());
    f.addPerson('bob@example.com');
    const auth = { Authorization: `Bearer ${f.secretKey}` };
    const b = 'XyZ';
    const body = `--${b}\r\nContent-Disposition: form-data; name="email"\r\n\r\nbob@example.com\r\n--${b}--\r\n`;
    const login = await call(`${f.url}/subject/token`, { method: 'POST', headers: { ...auth, 'Content-Type': `multipart/form-data; boundary=${b}` }, body });
    const token = login.json.response.token as string;
    expect(await call(`${f.url}/subject/erasure-request`, { headers: { ...auth, token } })).toMatchObject({ status: 200, json: { code: 200, status: 'success', response: true } });
    expect(f.person('bob@example.com')!.erasureRequests).toBe(1);
    expect(f.calls.at(-1)).toMatchObject({ path: '/subject/erasure-request', subject: 'bob@example.com' });
    expect((await call(`${f.url}/subject/token`, { method: 'POST', headers: auth, body: '' })).status).toBe(400);
  });
});

describe('Dxtra fake', () => {
  const Q = 'query Q($email: String!) { dataSubjects(where: {email: {_eq: $email}}) { id email dataSubjectConsentFormValues { value } } }';

  it('signs in with a PAT, answers GraphQL per X-Hasura-Role, errors with status 200', async () => {
    const f = await use(startDxtraFake());
    f.addPerson('alice@example.com');
    f.addPerson('bob@example.com');
    expect((await call(`${f.url}/v1/signin/pat`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"personalAccessToken":"nope"}' })).status).toBe(401);
    const login = await call(`${f.url}/v1/signin/pat`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ personalAccessToken: f.personalAccessToken }) });
    const { accessToken, accessTokenExpiresIn } = login.json.session;
    expect(accessTokenExpiresIn).toBe(900);
    const payload = JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString());
    expect(payload.exp - payload.iat).toBe(900);
    expect(f.counters.logins).toBe(1);

    const gql = (role: string | undefined, query: string, variables: object = { email: 'alice@example.com' }, token = accessToken) =>
      call(`${f.url}/v1/graphql`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...(role ? { 'X-Hasura-Role': role } : {}) }, body: JSON.stringify({ query, variables }) });
    const asUser = await gql('user', Q);
    expect(asUser.status).toBe(200);
    expect(asUser.json.data.dataSubjects).toEqual([{ id: expect.any(String), email: 'alice@example.com', dataSubjectConsentFormValues: [{ value: 'newsletter: granted (alice@example.com)' }, { value: 'analytics: denied (alice@example.com)' }] }]);
    expect((await gql(undefined, Q)).json).toEqual({ data: { dataSubjects: [] } }); // default role dataSubject: own rows only
    expect((await gql('admin', Q)).json.errors[0].extensions.code).toBe('access-denied');
    const unknown = await gql('user', '{ dataSubjects { id password } }');
    expect(unknown).toMatchObject({ status: 200, json: { errors: [{ message: "field 'password' not found in type: 'dataSubjects'" }] } });
    expect((await gql('user', Q, {})).json.errors[0].message).toContain('"email"');
    expect((await call(`${f.url}/api/rest/getdatacontrollerdetails`, { headers: { Authorization: `Bearer ${accessToken}`, 'X-Hasura-Role': 'user' } })).json).toEqual({ dataControllers: [f.controller] });

    const del = await gql('user', 'mutation D($email: String!) { deleteDataSubjects(where: {email: {_eq: $email}}) { affected_rows } }');
    expect(del.json).toEqual({ data: { deleteDataSubjects: { affected_rows: 1 } } });
    expect(f.subjects().map((s) => s.email)).toEqual(['bob@example.com']);
    expect(f.consentValues().every((c) => c.value.includes('bob'))).toBe(true);

    f.expireTokens();
    expect((await gql('user', Q)).status).toBe(401);
    expect((await gql('user', Q, {}, 'not-a-jwt')).json.errors[0].extensions.code).toBe('invalid-jwt');
  });

  it('can answer an expired JWT with 200 and invalid-jwt, as Hasura does', async () => {
    const f = await use(startDxtraFake({ invalidJwtStatus: 200 }));
    const login = await call(`${f.url}/v1/signin/pat`, { method: 'POST', body: JSON.stringify({ personalAccessToken: f.personalAccessToken }) });
    f.expireTokens();
    const res = await call(`${f.url}/v1/graphql`, { method: 'POST', headers: { Authorization: `Bearer ${login.json.session.accessToken}` }, body: JSON.stringify({ query: Q, variables: { email: 'x' } }) });
    expect(res).toMatchObject({ status: 200, json: { errors: [{ extensions: { code: 'invalid-jwt' }, message: 'Could not verify JWT: JWTExpired' }] } });
  });
});

describe('Axeptio fake', () => {
  it('signs in, accepts the token as a header or ?access_token=, pages with page/perPage, 403 once expired', async () => {
    const f = await use(startAxeptioFake());
    f.addPerson('alice@example.com', 7);
    f.addPerson('bob@example.com', 2);
    expect((await call(`${f.url}/v1/auth/local/signin`, { method: 'POST', body: JSON.stringify({ email: f.username, password: 'wrong' }) })).status).toBe(401);
    const { token } = (await call(`${f.url}/v1/auth/local/signin`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: f.username, password: f.password }) })).json;
    expect(f.counters.logins).toBe(1);
    expect((await call(`${f.url}/v1/vault/projects/${f.projectId}`)).status).toBe(403);
    expect((await call(`${f.url}/v1/vault/projects/${f.projectId}`, { headers: { Authorization: `Bearer ${token}` } })).json._id).toBe(f.projectId);

    const page = (n: number) => call(`${f.url}/v1/app/consents/${f.projectId}?identifier=alice%40example.com&page=${n}&perPage=3&access_token=${token}`);
    const pages = [await page(1), await page(2), await page(3)];
    expect(pages.map((p) => p.json.length)).toEqual([3, 3, 1]);
    expect(pages[0]!.headers['x-pagination-total']).toBe('7');
    expect(pages.flatMap((p) => p.json).map((c: { token: string }) => c.token)).toEqual(f.consents('alice@example.com').map((c) => c.token));
    expect(JSON.stringify(pages.map((p) => p.json))).not.toContain('bob');
    expect((await call(`${f.url}/v1/vendors/solutions?page=3&perPage=10&access_token=${token}`)).json).toHaveLength(5);

    f.expireTokens();
    expect((await page(1)).status).toBe(403);
  });
});

describe('OAuth2 fake', () => {
  it('issues client-credentials tokens (Basic or form) and serves {data} pages; 401 after expiry', async () => {
    const f = await use(startOAuth2Fake({ expiresIn: 120 }));
    f.addPerson('alice@example.com', 5);
    f.addPerson('bob@example.com', 1);
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
    const basic = await call(`${f.url}/oauth2/token`, { method: 'POST', headers: { ...form, Authorization: `Basic ${f.basic}` }, body: 'grant_type=client_credentials' });
    expect(basic).toMatchObject({ status: 200, json: { access_token: expect.any(String), token_type: 'Bearer', expires_in: 120 }, headers: { 'cache-control': 'no-store' } });
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: f.clientId, client_secret: f.clientSecret }).toString();
    expect((await call(`${f.url}/oauth2/token`, { method: 'POST', headers: form, body })).status).toBe(200);
    expect(f.counters.logins).toBe(2);
    expect((await call(`${f.url}/oauth2/token`, { method: 'POST', headers: { ...form, Authorization: 'Basic eDp5' }, body: 'grant_type=client_credentials' })).json.error).toBe('invalid_client');
    expect((await call(`${f.url}/oauth2/token`, { method: 'POST', headers: { ...form, Authorization: `Basic ${f.basic}` }, body: 'grant_type=password' })).json.error).toBe('unsupported_grant_type');
    expect((await call(`${f.url}/oauth2/token`, { method: 'POST', headers: { Authorization: `Basic ${f.basic}`, 'Content-Type': 'application/json' }, body: '{}' })).json.error).toBe('invalid_request');

    const auth = { Authorization: `Bearer ${basic.json.access_token}` };
    const page = (n: number) => call(`${f.url}/v1/subjects/records?email=alice%40example.com&page=${n}&per_page=2`, { headers: auth });
    const pages = [await page(1), await page(2), await page(3)];
    expect(pages.map((p) => p.json.data.length)).toEqual([2, 2, 1]);
    expect(pages[0]!.json).toMatchObject({ page: 1, per_page: 2, total: 5 });
    expect(JSON.stringify(pages.map((p) => p.json))).not.toContain('bob');
    expect((await call(`${f.url}/v1/subjects?email=bob%40example.com`, { method: 'DELETE', headers: auth })).status).toBe(204);
    expect(f.records('bob@example.com')).toBeUndefined();

    f.expireTokens();
    const expired = await page(1);
    expect(expired.status).toBe(401);
    expect(expired.headers['www-authenticate']).toContain('invalid_token');
  });
});
