import { describe, it, expect, afterAll, beforeAll } from '@jest/globals';
import { startTarget, json, makeSelfSignedCert, type Target } from './helpers/target.js';
import { makeTestAgent, connection, query } from './helpers/agent.js';

let target: Target;
beforeAll(async () => {
  target = await startTarget((_req, res) => json(res, 200, {}), makeSelfSignedCert());
});
afterAll(async () => {
  await target.close();
});

describe('verify_ssl', () => {
  it('"true" refuses a self-signed certificate without retrying; "false" skips verification for that query only', async () => {
    const strict = connection({ delete: [query(`${target.url}/d`, { verb: 'DELETE' })] });
    const lax = connection({ delete: [query(`${target.url}/d`, { verb: 'DELETE', verify_ssl: 'false' })] });
    const agent = makeTestAgent([strict, lax]);
    const before = target.received.length;
    const result = await agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    await agent.close();
    const byName = Object.fromEntries(result.connections.map((c) => [c.name, c]));
    expect(byName[strict.name as string]!.status).toBe('failed');
    expect(byName[strict.name as string]!.error).toEqual({ code: 'HTTP_NETWORK', message: expect.stringMatching(/certificate.*verify_ssl/) });
    expect(byName[lax.name as string]!.status).toBe('succeeded');
    expect(target.received.length - before).toBe(1); // only the lax query got through, the strict one was never retried
  });

  it('a healthy test query on HTTPS with verify_ssl "false"', async () => {
    const c = connection({ delete: [query(`${target.url}/d`, { verb: 'DELETE', verify_ssl: 'false' })] }, { queries: { test: [query(`${target.url}/health`, { verify_ssl: 'false' })], delete: [query(`${target.url}/d`, { verb: 'DELETE', verify_ssl: 'false' })] } });
    const agent = makeTestAgent([c]);
    const [r] = await agent.engine.test();
    await agent.close();
    expect(r).toMatchObject({ name: c.name, healthy: true });
  });
});
