import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as oauth from 'oauth4webapi';
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { connection, query } from './helpers/agent.js';
import { metricValues } from './helpers/metrics.js';
import { startTestServer, getToken, basic, CLIENT, API_LOCATION, CONNECTION_SECRET, type TestServer } from './helpers/server.js';

let s: TestServer;
let as: oauth.AuthorizationServer;
const client: oauth.Client = { client_id: CLIENT.id };
const insecure = { [oauth.allowInsecureRequests]: true };

beforeAll(async () => {
  s = await startTestServer([connection({ delete: [query('http://127.0.0.1:9/d')] })]);
  as = { issuer: s.url, token_endpoint: `${s.url}/api/v1/token` };
});
afterAll(async () => {
  await s.close();
});

const form = (body: string, headers: Record<string, string> = {}) =>
  fetch(`${s.url}/api/v1/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
const connections = (authorization?: string) => fetch(`${s.url}/api/v1/connections`, { headers: authorization ? { authorization } : {} });

describe('POST /api/v1/token with an off-the-shelf OAuth 2.0 client (oauth4webapi)', () => {
  it.each([
    ['HTTP Basic', () => oauth.ClientSecretBasic(CLIENT.secret)],
    ['client_secret_post', () => oauth.ClientSecretPost(CLIENT.secret)],
  ])('issues a 15-minute bearer token with %s client authentication, and the token opens the API', async (_name, auth) => {
    const res = await oauth.clientCredentialsGrantRequest(as, client, auth(), new URLSearchParams(), insecure);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const token = await oauth.processClientCredentialsResponse(as, client, res);
    expect(token.token_type).toBe('bearer'); // oauth4webapi normalises the case
    expect(token.expires_in).toBe(900);
    const claims = decodeJwt(token.access_token);
    expect(decodeProtectedHeader(token.access_token).alg).toBe('HS256');
    expect(claims).toMatchObject({ iss: 'dsr-agent', aud: 'dsr-agent-api', sub: CLIENT.id });
    expect(typeof claims.jti).toBe('string');
    expect(claims.exp! - claims.iat!).toBe(900);
    const list = await connections(`Bearer ${token.access_token}`);
    expect(list.status).toBe(200);
  });

  it('refuses a wrong secret with 401 invalid_client and a Basic challenge', async () => {
    const res = await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic('wrong'), new URLSearchParams(), insecure);
    expect(res.status).toBe(401);
    await expect(oauth.processClientCredentialsResponse(as, client, res)).rejects.toMatchObject({
      name: 'WWWAuthenticateChallengeError',
      status: 401,
      cause: [{ scheme: 'basic', parameters: { realm: 'dsr-agent' } }],
    });
    const body = await (await form(`grant_type=client_credentials&client_id=${CLIENT.id}&client_secret=nope`)).json();
    expect(body).toMatchObject({ error: 'invalid_client' });
  });

  it('refuses a wrong client id with a right secret', async () => {
    const res = await form('grant_type=client_credentials', { authorization: basic('someone-else', CLIENT.secret) });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Basic realm="dsr-agent"');
  });
});

describe('POST /api/v1/token errors (RFC 6749 section 5.2)', () => {
  it.each<[string, number, string, () => Promise<Response>]>([
    ['an unsupported grant type', 400, 'unsupported_grant_type', () => form('grant_type=password&username=a&password=b', { authorization: basic(CLIENT.id, CLIENT.secret) })],
    ['no grant_type', 400, 'invalid_request', () => form('', { authorization: basic(CLIENT.id, CLIENT.secret) })],
    ['grant_type twice', 400, 'invalid_request', () => form('grant_type=client_credentials&grant_type=client_credentials', { authorization: basic(CLIENT.id, CLIENT.secret) })],
    ['both Basic and body credentials', 400, 'invalid_request', () => form(`grant_type=client_credentials&client_id=${CLIENT.id}&client_secret=x`, { authorization: basic(CLIENT.id, CLIENT.secret) })],
    ['no client authentication', 401, 'invalid_client', () => form('grant_type=client_credentials')],
    ['a malformed Basic header', 401, 'invalid_client', () => form('grant_type=client_credentials', { authorization: 'Basic !!!' })],
    [
      'a JSON body',
      400,
      'invalid_request',
      () => fetch(`${s.url}/api/v1/token`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: basic(CLIENT.id, CLIENT.secret) }, body: '{"grant_type":"client_credentials"}' }),
    ],
  ])('answers %s with %i %s', async (_what, status, error, send) => {
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as { error: string; error_description: string };
    expect(body.error).toBe(error);
    expect(body.error_description.length).toBeGreaterThan(10);
  });

  it('stops accepting the old secret as soon as it is rotated in the credentials manager', async () => {
    const write = (secret: string) =>
      writeFileSync(join(s.agent.dir, 'secrets.json'), JSON.stringify({ default: CONNECTION_SECRET, [API_LOCATION]: { client_id: CLIENT.id, client_secret: secret } }));
    try {
      write('rotated-secret');
      expect((await form('grant_type=client_credentials', { authorization: basic(CLIENT.id, CLIENT.secret) })).status).toBe(401);
      expect((await form('grant_type=client_credentials', { authorization: basic(CLIENT.id, 'rotated-secret') })).status).toBe(200);
    } finally {
      write(CLIENT.secret);
    }
  });

  it('counts refusals in dsr_token_failures_total', async () => {
    // Deltas over this test's own requests, whatever the tests before it left in the counters.
    const series = ['invalid_client', 'unsupported_grant_type'].map((reason) => `dsr_token_failures_total{reason="${reason}"}`);
    const before = await metricValues(s.url, series);
    expect((await form(`grant_type=client_credentials&client_id=${CLIENT.id}&client_secret=nope`)).status).toBe(401);
    expect((await form('grant_type=password', { authorization: basic(CLIENT.id, CLIENT.secret) })).status).toBe(400);
    expect(await metricValues(s.url, series)).toEqual(Object.fromEntries(series.map((k) => [k, before[k]! + 1])));
  });
});

describe('bearer tokens on /api/v1', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const sign = (key: Uint8Array, claims: { aud?: string; iss?: string; exp?: number }) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(claims.iss ?? 'dsr-agent')
      .setAudience(claims.aud ?? 'dsr-agent-api')
      .setSubject(CLIENT.id)
      .setJti('j1')
      // A minute ago: a token may be at most its 15-minute lifetime old (from iat), so an hour-old iat is now refused.
      .setIssuedAt(now() - 60)
      .setExpirationTime(claims.exp ?? now() + 600)
      .sign(key);
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

  it('accepts a token it signed', async () => {
    expect((await connections(`Bearer ${await sign(s.tokenKey, {})}`)).status).toBe(200);
  });

  it.each<[string, () => Promise<string | undefined>]>([
    ['missing', async () => undefined],
    ['not Bearer', async () => basic(CLIENT.id, CLIENT.secret)],
    ['Bearer without a token', async () => 'Bearer '],
    ['not a JWT', async () => 'Bearer not-a-jwt'],
    ['expired', async () => `Bearer ${await sign(s.tokenKey, { exp: now() - 60 })}`],
    ['forged with another key', async () => `Bearer ${await sign(new Uint8Array(randomBytes(32)), {})}`],
    ['for another audience', async () => `Bearer ${await sign(s.tokenKey, { aud: 'someone-else' })}`],
    ['from another issuer', async () => `Bearer ${await sign(s.tokenKey, { iss: 'evil' })}`],
    ['alg none', async () => `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: 'dsr-agent', aud: 'dsr-agent-api', sub: CLIENT.id, jti: 'x', iat: now(), exp: now() + 600 })}.`],
    [
      'alg none with the real signature stripped',
      async () => {
        const [, payload] = (await getToken(s.url)).split('.');
        return `Bearer ${b64({ alg: 'none' })}.${payload}.`;
      },
    ],
  ])('refuses a %s token with 401 invalid_token', async (_what, header) => {
    const res = await connections(await header());
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="dsr-agent", error="invalid_token"');
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('invalid_token');
    expect(body.message).toMatch(/POST \/api\/v1\/token/);
  });

  it('protects every job API route', async () => {
    const routes: Array<[string, string]> = [
      ['POST', '/api/v1/jobs'],
      ['GET', '/api/v1/jobs/abc'],
      ['GET', '/api/v1/connections'],
      ['POST', `/api/v1/connections/any/test`],
    ];
    for (const [method, path] of routes) {
      const res = await fetch(`${s.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
      expect([path, res.status]).toEqual([path, 401]);
    }
  });

  it('counts bearer refusals by reason', async () => {
    const series = ['bearer_missing', 'bearer_malformed', 'bearer_expired', 'bearer_invalid'].map((reason) => `dsr_token_failures_total{reason="${reason}"}`);
    const before = await metricValues(s.url, series);
    for (const header of [undefined, 'Bearer ', `Bearer ${await sign(s.tokenKey, { exp: now() - 60 })}`, `Bearer ${await sign(s.tokenKey, { aud: 'someone-else' })}`]) {
      expect((await connections(header)).status).toBe(401);
    }
    expect(await metricValues(s.url, series)).toEqual(Object.fromEntries(series.map((k) => [k, before[k]! + 1])));
  });

  it('never logs the Authorization header, the token or the client secret', async () => {
    const token = await getToken(s.url);
    await connections(`Bearer ${token}`);
    await form(`grant_type=client_credentials&client_id=${CLIENT.id}&client_secret=${encodeURIComponent(CLIENT.secret)}`);
    const logs = s.agent.logs.lines().join('\n');
    expect(logs).toContain('incoming request'); // the requests were logged...
    expect(logs).not.toContain(token.split('.')[2]!); // ...without their credentials
    expect(logs).not.toContain(CLIENT.secret);
    expect(logs).not.toContain(Buffer.from(`${CLIENT.id}:`).toString('base64').slice(0, 8));
    expect(logs.toLowerCase()).not.toContain('authorization');
  });
});

describe('without datagrail_agent_credentials_location', () => {
  let off: TestServer;
  beforeAll(async () => {
    off = await startTestServer([connection({ delete: [query('http://127.0.0.1:9/d')] })], { apiCredentials: false });
  });
  afterAll(async () => {
    await off.close();
  });

  it('answers 503 on the token endpoint and on every /api/v1 route, saying what to configure', async () => {
    const token = await fetch(`${off.url}/api/v1/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('a', 'b') }, body: 'grant_type=client_credentials' });
    expect(token.status).toBe(503);
    expect(((await token.json()) as { error_description: string }).error_description).toMatch(/datagrail_agent_credentials_location/);
    const jobs = await fetch(`${off.url}/api/v1/connections`, { headers: { authorization: `Bearer ${await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).sign(off.tokenKey)}` } });
    expect(jobs.status).toBe(503);
    expect(await jobs.json()).toMatchObject({ error: 'api_disabled', message: expect.stringMatching(/datagrail_agent_credentials_location/) });
    expect((await fetch(`${off.url}/healthz`)).status).toBe(200);
  });
});
