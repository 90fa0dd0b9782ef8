/**
 * JWT hygiene (RFC 8725, issue 10): access tokens are bound to one deployment, checked for issuer,
 * audience, subject and age, and a rotated API client secret invalidates them without a restart.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from '@jest/globals';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT, decodeJwt } from 'jose';
import { connection, query } from './helpers/agent.js';
import { startTestServer, getToken, CLIENT, type TestServer } from './helpers/server.js';
import { startService, bearer, type ServiceProcess } from './helpers/service.js';
import { writeServiceConfig, CLIENT_ID, CLIENT_SECRET } from './helpers/service-config.js';

const now = () => Math.floor(Date.now() / 1000);
const YEAR_3000 = Math.floor(Date.UTC(3000, 0, 1) / 1000);
const connections = (url: string, authorization?: string) => fetch(`${url}/api/v1/connections`, { headers: authorization ? { authorization } : {} });
const noConnections = () => [connection({ delete: [query('http://127.0.0.1:9/d')] })];

/** Claims of a token signed with the deployment's own key, as someone holding the client secret could mint. */
interface Claims {
  iss?: string;
  aud?: string;
  sub?: string | null;
  jti?: string | null;
  iat?: number | null;
  exp?: number;
}

function mint(key: Uint8Array, c: Claims = {}): Promise<string> {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuer(c.iss ?? 'dsr-agent').setAudience(c.aud ?? 'dsr-agent-api');
  if (c.sub !== null) jwt.setSubject(c.sub ?? CLIENT.id);
  if (c.jti !== null) jwt.setJti(c.jti ?? 'forged-1');
  if (c.iat !== null) jwt.setIssuedAt(c.iat ?? now());
  return jwt.setExpirationTime(c.exp ?? (c.iat ?? now()) + 600).sign(key);
}

describe('tokens minted with the right key but claims this agent never issues', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer(noConnections());
  });
  afterAll(async () => {
    await s.close();
  });

  it('accepts a well-formed token signed with the deployment key (the control for the cases below)', async () => {
    expect((await connections(s.url, `Bearer ${await mint(s.tokenKey)}`)).status).toBe(200);
  });

  const FORGED: Array<[string, () => Claims]> = [
    ['exp in the year 3000, iat now', () => ({ exp: YEAR_3000 })],
    ['exp in the year 3000, iat an hour ago', () => ({ iat: now() - 3600, exp: YEAR_3000 })],
    ['exp in the year 3000, no iat', () => ({ iat: null, exp: YEAR_3000 })],
    ['iat an hour ago, exp in 10 minutes (older than the 15-minute lifetime)', () => ({ iat: now() - 3600, exp: now() + 600 })],
    ['iat 16 minutes ago, exp in a minute', () => ({ iat: now() - 16 * 60, exp: now() + 60 })],
    ['lifetime of 16 minutes from now', () => ({ iat: now(), exp: now() + 16 * 60 })],
    ['iat a minute in the future (beyond the 5 s clock tolerance)', () => ({ iat: now() + 60, exp: now() + 600 })],
    ['iat an hour in the future', () => ({ iat: now() + 3600, exp: now() + 3600 + 600 })],
    ['iat in the year 3000', () => ({ iat: YEAR_3000, exp: YEAR_3000 + 600 })],
    ['sub another client', () => ({ sub: 'someone-else' })],
    ['sub the client id in another case', () => ({ sub: CLIENT.id.toUpperCase() })],
    ['no sub', () => ({ sub: null })],
    ['no jti', () => ({ jti: null })],
    ['aud of another deployment', () => ({ aud: 'dsr-agent-staging' })],
  ];

  it.each(FORGED)('refuses a token with %s: 401 invalid_token', async (_what, claims) => {
    const res = await connections(s.url, `Bearer ${await mint(s.tokenKey, claims())}`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="dsr-agent", error="invalid_token"');
    expect(await res.json()).toMatchObject({ error: 'invalid_token', message: expect.stringContaining('POST /api/v1/token') });
  });

  it('issues tokens whose sub is the configured client_id and whose lifetime is what it accepts', async () => {
    const claims = decodeJwt(await getToken(s.url));
    expect(claims).toMatchObject({ iss: 'dsr-agent', aud: 'dsr-agent-api', sub: CLIENT.id });
    expect(claims.exp! - claims.iat!).toBe(900);
  });
});

describe('a token from another deployment that shares the client secret', () => {
  let home: TestServer;
  const others: TestServer[] = [];
  beforeAll(async () => {
    home = await startTestServer(noConnections());
  });
  afterAll(async () => {
    await Promise.all([home, ...others].map((s) => s.close()));
  });

  it('is accepted from another replica of the same deployment (same config, same secret)', async () => {
    const replica = await startTestServer(noConnections());
    others.push(replica);
    expect((await connections(home.url, `Bearer ${await getToken(replica.url)}`)).status).toBe(200);
    expect((await connections(replica.url, `Bearer ${await getToken(home.url)}`)).status).toBe(200);
  });

  it.each<[string, Parameters<typeof startTestServer>[1]]>([
    ['another agent.token_audience', { top: { agent: { token_audience: 'dsr-agent-staging' } } }],
    ['another agent.queue_name', { top: { agent: { queue_name: 'dsr-agent-staging' } } }],
    [
      'another datagrail_agent_credentials_location holding the same client_id and secret',
      { top: { datagrail_agent_credentials_location: 'staging-api' }, secrets: { 'staging-api': { client_id: CLIENT.id, client_secret: CLIENT.secret } } },
    ],
  ])('is refused when the other deployment has %s, both ways', async (_what, opts) => {
    const other = await startTestServer(noConnections(), opts);
    others.push(other);
    const theirs = await getToken(other.url);
    expect((await connections(other.url, `Bearer ${theirs}`)).status).toBe(200); // valid where it was issued
    const res = await connections(home.url, `Bearer ${theirs}`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'invalid_token' });
    expect((await connections(other.url, `Bearer ${await getToken(home.url)}`)).status).toBe(401);
  });
});

describe('two running services (dist/cli.js serve) sharing the API client secret', () => {
  const services: ServiceProcess[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(services.map((svc) => svc.stop('SIGKILL')));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a token issued by one deployment is refused by the other; a replica of the same deployment accepts it', async () => {
    const start = async (top: Record<string, unknown>, dataDir?: string) => {
      const written = writeServiceConfig('http://127.0.0.1:9', top);
      dirs.push(written.dir);
      const svc = await startService(written.configPath, { DSR_AGENT_DATA_DIR: dataDir ?? join(written.dir, 'data') });
      services.push(svc);
      return svc;
    };
    const [prod, replica, staging] = await Promise.all([start({}), start({}), start({ agent: { queue_name: 'dsr-agent-staging' } })]);
    const prodToken = await bearer(prod.url, CLIENT_ID, CLIENT_SECRET);
    const stagingToken = await bearer(staging.url, CLIENT_ID, CLIENT_SECRET);
    expect((await connections(replica.url, prodToken.authorization)).status).toBe(200);
    expect((await connections(staging.url, prodToken.authorization)).status).toBe(401);
    expect((await connections(prod.url, stagingToken.authorization)).status).toBe(401);
    expect((await connections(staging.url, stagingToken.authorization)).status).toBe(200);
  }, 30_000);
});

describe('when the credentials manager cannot be read', () => {
  let s: TestServer | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });
  const secretsFile = () => join(s!.agent.dir, 'secrets.json');

  it('verifies tokens with the last secret read, warns once, and the token endpoint answers 503', async () => {
    s = await startTestServer(noConnections());
    const token = await getToken(s.url);
    const good = readFileSync(secretsFile(), 'utf8');
    writeFileSync(secretsFile(), '{"not json');
    expect((await connections(s.url, `Bearer ${token}`)).status).toBe(200);
    expect((await connections(s.url, `Bearer ${token}`)).status).toBe(200);
    expect((await connections(s.url, `Bearer ${await mint(new Uint8Array(32))}`)).status).toBe(401); // still verified, not waved through
    const refused = await fetch(`${s.url}/api/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: CLIENT.id, client_secret: CLIENT.secret }).toString(),
    });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: 'temporarily_unavailable' });
    const warnings = s.agent.logs.lines().filter((l) => l.includes('verifying access tokens with the last one read'));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({ level: 'warn', code: 'SECRET_PROVIDER_ERROR' });
    writeFileSync(secretsFile(), good);
    expect((await connections(s.url, `Bearer ${token}`)).status).toBe(200);
    expect(s.agent.logs.lines().some((l) => l.includes('the API client secret can be read again'))).toBe(true);
  });

  it('answers 503 credentials_unavailable with Retry-After when the secret was never read', async () => {
    s = await startTestServer(noConnections());
    writeFileSync(secretsFile(), '{"not json');
    const res = await connections(s.url, `Bearer ${await mint(s.tokenKey)}`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toMatchObject({ error: 'credentials_unavailable' });
    expect((await connections(s.url)).status).toBe(401); // no header: refused before the secret is needed
  });
});

describe('a rotated client secret in the running service (dist/cli.js serve, JSONFile)', () => {
  let svc: ServiceProcess | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await svc?.stop('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
    svc = dir = undefined;
  });
  const ROTATED = 'rotated-client-secret';
  const rotate = (secret: string) => {
    const file = join(dir!, 'secrets.json');
    const secrets = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...secrets, api: { ...secrets.api, client_secret: secret } }));
  };
  const tokenStatus = (clientSecret: string) =>
    fetch(`${svc!.url}/api/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: clientSecret }).toString(),
    }).then((r) => r.status);

  it('refuses old tokens once the secrets cache refreshes, and issues and accepts tokens for the new secret, without a restart', async () => {
    ({ dir } = writeServiceConfig('http://127.0.0.1:9', { agent: { secret_cache_ttl_seconds: 1 } }));
    svc = await startService(join(dir, 'config.json'), { DSR_AGENT_DATA_DIR: join(dir, 'data') });
    const old = await bearer(svc.url, CLIENT_ID, CLIENT_SECRET);
    expect((await connections(svc.url, old.authorization)).status).toBe(200);
    rotate(ROTATED);
    // The event: the cache re-reads the file and the old token is refused (deadline 15 s, far above the 1 s TTL).
    const until = Date.now() + 15_000;
    let status = 200;
    while (status === 200 && Date.now() < until) {
      status = (await connections(svc.url, old.authorization)).status;
      if (status === 200) await sleep(100);
    }
    expect(status).toBe(401);
    expect(svc.output()).toContain('API client secret changed');
    expect(svc.output()).not.toContain(ROTATED);
    expect(await tokenStatus(CLIENT_SECRET)).toBe(401);
    const fresh = await bearer(svc.url, CLIENT_ID, ROTATED);
    expect((await connections(svc.url, fresh.authorization)).status).toBe(200);
    expect(svc.child.exitCode).toBeNull(); // the same process throughout
  }, 30_000);

  it('takes the new secret at the token endpoint at once, within the cache TTL, and old tokens are refused from then on', async () => {
    ({ dir } = writeServiceConfig('http://127.0.0.1:9')); // secret_cache_ttl_seconds: the default 300
    svc = await startService(join(dir, 'config.json'), { DSR_AGENT_DATA_DIR: join(dir, 'data') });
    const old = await bearer(svc.url, CLIENT_ID, CLIENT_SECRET);
    rotate(ROTATED);
    expect((await connections(svc.url, old.authorization)).status).toBe(200); // the cache has not seen the rotation yet
    const fresh = await bearer(svc.url, CLIENT_ID, ROTATED); // a mismatch re-reads the secret
    expect((await connections(svc.url, fresh.authorization)).status).toBe(200);
    expect((await connections(svc.url, old.authorization)).status).toBe(401);
    expect(await tokenStatus(CLIENT_SECRET)).toBe(401);
  }, 30_000);
});

