import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { connection, query } from './helpers/agent.js';
import { startTestServer, getToken, CONNECTION_SECRET, CLIENT, type TestServer } from './helpers/server.js';
import { startTarget, json, type Target } from './helpers/target.js';

let target: Target;
let s: TestServer;
let token: string;
let healthy = true;
const live = connection({ delete: [query('http://127.0.0.1:9/d')] }, { name: 'Billing' });
const testMode = connection({ delete: [query('http://127.0.0.1:9/d')] }, { name: 'Sandbox', mode: 'test' });
/** Health checks the target served. */
const hits = () => target.received.filter((r) => r.url === '/health').length;

beforeAll(async () => {
  target = await startTarget((req, res) => (req.url === '/health' && healthy ? json(res, 200, { ok: true }) : json(res, 503, { ok: false })));
  const withTarget = (c: Record<string, unknown>) => ({ ...c, queries: { ...(c.queries as object), test: [query(`${target.url}/health`)] } });
  s = await startTestServer([withTarget(live), withTarget(testMode)]);
  token = await getToken(s.url);
});
afterAll(async () => {
  await s?.close();
  await target?.close();
});

const readyz = async () => {
  const res = await fetch(`${s.url}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const api = (path: string, method = 'GET') => fetch(`${s.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });

describe('GET /, /healthz, /docs, /openapi.json', () => {
  it('answers version and liveness without touching a target', async () => {
    const before = hits();
    expect(await (await fetch(`${s.url}/`)).json()).toEqual({ version: '9.9.9-test' });
    const h = await fetch(`${s.url}/healthz`);
    expect([h.status, await h.json()]).toEqual([200, { status: 'ok' }]);
    expect(hits()).toBe(before);
  });

  it('serves an OpenAPI 3 document generated from the schemas the server validates with, and Swagger UI', async () => {
    const doc = (await (await fetch(`${s.url}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> }; security?: unknown }>>;
      components: { schemas: Record<string, { properties?: Record<string, { enum?: string[] }> }> };
    };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths).sort()).toEqual(
      ['/', '/api/v1/connections', '/api/v1/connections/{uuid}/test', '/api/v1/jobs', '/api/v1/jobs/{id}', '/api/v1/token', '/healthz', '/metrics', '/readyz'].sort(),
    );
    expect(doc.paths['/api/v1/jobs']!.post!.requestBody!.content['application/json']!.schema).toEqual({ $ref: '#/components/schemas/JobRequest' });
    expect(doc.paths['/api/v1/jobs']!.post!.security).toEqual([{ oauth2: [] }]);
    expect(doc.components.schemas.JobRequest!.properties!.type!.enum).toEqual(['access', 'delete', 'optout', 'identifiers']);
    for (const name of ['Job', 'JobAccepted', 'Error', 'ConnectionResult', 'TokenResponse', 'OAuthError']) expect(doc.components.schemas[name]).toBeDefined();
    const ui = await fetch(`${s.url}/docs`, { redirect: 'follow' });
    expect(ui.status).toBe(200);
    expect(await ui.text()).toMatch(/swagger/i);
  });
});

describe('GET /readyz', () => {
  it('is 503 before the first background check, then 200 once every check passed', async () => {
    const first = await readyz();
    expect(first.status).toBe(503);
    expect(first.body).toMatchObject({ status: 'unavailable', checks: { config: { ok: true }, connections: { ok: false, code: 'PENDING' } } });
    await s.readiness.refresh();
    const ok = await readyz();
    expect(ok).toEqual({
      status: 200,
      body: { status: 'ok', checked_at: expect.any(String), checks: { config: { ok: true }, credentials: { ok: true }, storage: { ok: true }, connections: { ok: true }, queue: { ok: true } } },
    });
  });

  it('serves probes from the cache: the target sees no request however often /readyz is asked', async () => {
    await s.readiness.refresh();
    const before = hits();
    for (let i = 0; i < 25; i++) expect((await readyz()).status).toBe(200);
    expect(hits()).toBe(before);
    await s.readiness.refresh();
    expect(hits()).toBe(before + 1); // one check round tests the one live connection once (the test-mode one is left out)
  });

  it("turns 503 naming the connection when a live connection's test target is down, and 200 again when it recovers", async () => {
    healthy = false;
    try {
      await s.readiness.refresh();
      const down = await readyz();
      expect(down.status).toBe(503);
      expect(down.body).toMatchObject({
        status: 'unavailable',
        checks: { connections: { ok: false, failing: [{ name: 'Billing', uuid: live.uuid, code: 'HTTP_STATUS' }] }, storage: { ok: true } },
      });
    } finally {
      healthy = true;
    }
    await s.readiness.refresh();
    expect((await readyz()).status).toBe(200);
  });

  it('fails the credentials check when the credentials manager cannot answer', async () => {
    s.agent.setSecrets({ default: { ...CONNECTION_SECRET } }); // the API client secret is gone
    try {
      await s.readiness.refresh();
      const r = await readyz();
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ checks: { credentials: { ok: false, code: 'SECRET_NOT_FOUND' } } });
    } finally {
      s.agent.setSecrets({ default: { ...CONNECTION_SECRET }, 'dsr-agent-api': { client_id: CLIENT.id, client_secret: CLIENT.secret } });
    }
    await s.readiness.refresh();
    expect((await readyz()).status).toBe(200);
  });
});

describe('connections', () => {
  it('lists connections with their last test, never a secret, a location or a query', async () => {
    await s.readiness.refresh();
    const res = await api('/api/v1/connections');
    expect(res.status).toBe(200);
    const text = await res.text();
    const list = JSON.parse(text) as Array<Record<string, unknown>>;
    expect(list.map((c) => Object.keys(c).sort())).toEqual([
      ['capabilities', 'connector_type', 'last_test', 'mode', 'name', 'uuid'],
      ['capabilities', 'connector_type', 'last_test', 'mode', 'name', 'uuid'],
    ]);
    expect(list[0]).toMatchObject({ name: 'Billing', uuid: live.uuid, connector_type: 'APIProxy', capabilities: ['privacy/delete'], mode: 'live', last_test: { healthy: true, checked_at: expect.any(String) } });
    expect(list[1]).toMatchObject({ name: 'Sandbox', mode: 'test', last_test: null });
    for (const leak of [CONNECTION_SECRET.credentials, 'credentials_location', 'default', target.url, '{credentials}', 'queries']) expect(text).not.toContain(leak);
  });

  it('tests a connection on demand (even a test-mode one) and records the outcome', async () => {
    const before = hits();
    const res = await api(`/api/v1/connections/${testMode.uuid as string}/test`, 'POST');
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual({ uuid: testMode.uuid, name: 'Sandbox', healthy: true, duration_ms: expect.any(Number) });
    expect(hits()).toBe(before + 1);
    const list = (await (await api('/api/v1/connections')).json()) as Array<{ name: string; last_test: unknown }>;
    expect(list.find((c) => c.name === 'Sandbox')!.last_test).toMatchObject({ healthy: true });
  });

  it('reports an unhealthy connection with its error, and 404 for an unknown one', async () => {
    healthy = false;
    try {
      const res = await api(`/api/v1/connections/${live.uuid as string}/test`, 'POST');
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ name: 'Billing', healthy: false, error: { code: 'HTTP_STATUS', message: expect.any(String) } });
    } finally {
      healthy = true;
    }
    const missing = await api('/api/v1/connections/00000000-0000-4000-8000-ffffffffffff/test', 'POST');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'connection_not_found' });
  });
});

describe('draining', () => {
  it('answers 503 {"status": "draining"} once shutdown began', async () => {
    s.readiness.setDraining();
    expect(await readyz()).toEqual({ status: 503, body: { status: 'draining' } });
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });
});

describe('makeReadiness timer', () => {
  it('checks at start, then every interval, and stops when asked', async () => {
    const { makeReadiness } = await import('../src/server/readiness.js');
    const { makeLocalStorage } = await import('../src/storage/local.js');
    const { makeSecretsSource } = await import('../src/credentials/index.js');
    const r = makeReadiness({
      engine: s.agent.engine,
      storage: makeLocalStorage({ directory: `${s.agent.dir}/timer` }),
      secrets: makeSecretsSource(s.agent.config.platform.credentials_manager, s.agent.dir),
      config: s.agent.config,
      logger: s.agent.logs.logger,
      intervalMs: 100,
    });
    const before = hits();
    r.start();
    await new Promise((res) => setTimeout(res, 450));
    r.stop();
    const during = hits() - before;
    expect(during).toBeGreaterThanOrEqual(3); // at start, then about every 100 ms
    expect(during).toBeLessThanOrEqual(6);
    expect(r.snapshot().status).toBe('ok');
    await new Promise((res) => setTimeout(res, 300));
    expect(hits() - before).toBe(during);
  });
});
