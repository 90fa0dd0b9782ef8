/** What the service shows anyone who can reach it: headers, unknown routes, /metrics, DataGrail's health path. */
import { describe, it, expect, afterEach } from '@jest/globals';
import { startTestServer, getToken, type TestServer } from './helpers/server.js';
import { connection, query } from './helpers/agent.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});
const conn = () => connection({ access: [query('http://127.0.0.1:9/users?email={email}')] });

describe('exposure', () => {
  it('every response says nosniff; /api/v1 responses are never cached; /docs has a CSP', async () => {
    server = await startTestServer([conn()], { process: false });
    const token = await getToken(server.url);
    for (const path of ['/healthz', '/readyz', '/metrics', '/docs/static/index.html', '/api/v1/connections', '/nowhere']) {
      const res = await fetch(`${server.url}${path}`, { headers: path.startsWith('/api') ? { authorization: `Bearer ${token}` } : {} });
      expect([path, res.headers.get('x-content-type-options')]).toEqual([path, 'nosniff']);
    }
    const api = await fetch(`${server.url}/api/v1/connections`, { headers: { authorization: `Bearer ${token}` } });
    expect(api.headers.get('cache-control')).toBe('no-store');
    const tokenRes = await fetch(`${server.url}/api/v1/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
    expect(tokenRes.headers.get('cache-control')).toBe('no-store');
    const docs = await fetch(`${server.url}/docs/static/index.html`);
    expect(docs.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
  });

  it('an unknown /api/v1 route answers 401 without a token (no route enumeration), 404 with one', async () => {
    server = await startTestServer([conn()], { process: false });
    const anonymous = await fetch(`${server.url}/api/v1/admin/users`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const token = await getToken(server.url);
    const known = await fetch(`${server.url}/api/v1/admin/users`, { headers: { authorization: `Bearer ${token}` } });
    expect(known.status).toBe(404);
    expect((await fetch(`${server.url}/elsewhere`)).status).toBe(404);
  });

  it("answers DataGrail's health path /api/v1/hc like /healthz, without a token", async () => {
    server = await startTestServer([conn()], { process: false });
    const res = await fetch(`${server.url}/api/v1/hc`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('agent.metrics_require_auth puts /metrics behind a bearer token', async () => {
    server = await startTestServer([conn()], { process: false, top: { agent: { metrics_require_auth: true } } });
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    const token = await getToken(server.url);
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('dsr_jobs_total');
  });
});
