import { describe, it, expect } from '@jest/globals';
import { startTarget, json } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';

const fx = useFixtures();

const del = (url: string, extra: Record<string, unknown> = {}) =>
  connection({ delete: [query(url, { verb: 'DELETE', valid_response_codes: [200, 404], fail_retry_response_codes: [503, 429], ...extra })] });

describe('retries', () => {
  it('retries 503 then succeeds on 200', async () => {
    fx.target = await startTarget((_req, res, { n }) => (n < 3 ? json(res, 503, {}) : json(res, 200, {})));
    fx.agent = makeTestAgent([del(`${fx.target.url}/users`)]);
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.status).toBe('succeeded');
    expect(fx.target.received).toHaveLength(3);
  });

  it('treats a status in valid_response_codes (404) as success without retrying', async () => {
    fx.target = await startTarget((_req, res) => json(res, 404, {}));
    fx.agent = makeTestAgent([del(`${fx.target.url}/users`)]);
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.connections[0]!.status).toBe('succeeded');
    expect(fx.target.received).toHaveLength(1);
  });

  it('fails at once, with the status, on a status neither valid nor retryable', async () => {
    fx.target = await startTarget((_req, res) => json(res, 500, {}));
    fx.agent = makeTestAgent([del(`${fx.target.url}/users`)]);
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.status).toBe('failed');
    expect(result.connections[0]!.error).toEqual({ code: 'HTTP_STATUS', message: expect.stringContaining('500') });
    expect(fx.target.received).toHaveLength(1);
  });

  it('gives up after the configured retries with the last status', async () => {
    fx.target = await startTarget((_req, res) => json(res, 503, {}));
    fx.agent = makeTestAgent([del(`${fx.target.url}/users`)], { top: { agent: { retries: 2 } } });
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.connections[0]!.error?.code).toBe('HTTP_STATUS');
    expect(result.connections[0]!.error?.message).toMatch(/503 after 3 attempts/);
    expect(fx.target.received).toHaveLength(3);
  });

  it('honours Retry-After (seconds) over a shorter backoff', async () => {
    const times: number[] = [];
    fx.target = await startTarget((_req, res, { n }) => {
      times.push(performance.now());
      if (n === 1) json(res, 429, {}, { 'retry-after': '1' });
      else json(res, 200, {});
    });
    fx.agent = makeTestAgent([del(`${fx.target.url}/users`)]);
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.status).toBe('succeeded');
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(950);
  });

  it('retries a connection reset and then succeeds', async () => {
    fx.target = await startTarget((req, res, { n }) => {
      if (n === 1) req.socket.destroy();
      else json(res, 200, {});
    });
    fx.agent = makeTestAgent([del(`${fx.target.url}/users`)]);
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.status).toBe('succeeded');
    expect(fx.target.received).toHaveLength(2);
  });

  it('fails with HTTP_NETWORK when the connection is refused every time', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, {}));
    const url = fx.target.url;
    await fx.target.close();
    fx.target = undefined;
    fx.agent = makeTestAgent([del(`${url}/users`)], { top: { agent: { retries: 1 } } });
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.connections[0]!.error).toEqual({ code: 'HTTP_NETWORK', message: expect.stringMatching(/ECONNREFUSED.*2 attempts/) });
  });

  it('runs a connection\'s queries in order and stops at the first failure', async () => {
    fx.target = await startTarget((req, res) => json(res, req.url === '/b' ? 500 : 200, {}));
    fx.agent = makeTestAgent([connection({ optout: [query(`${fx.target.url}/a`, { verb: 'PUT' }), query(`${fx.target.url}/b`, { verb: 'PUT' }), query(`${fx.target.url}/c`, { verb: 'PUT' })] })]);
    const result = await fx.agent.engine.run({ type: 'optout', identifiers: { email: 'a@b.c' } });
    expect(result.status).toBe('failed');
    expect(fx.target.received.map((r) => `${r.method} ${r.url}`)).toEqual(['PUT /a', 'PUT /b']);
  });

  it('one failing connection does not fail the others: status partial', async () => {
    fx.target = await startTarget((req, res) => json(res, req.url === '/bad' ? 500 : 200, {}));
    fx.agent = makeTestAgent([del(`${fx.target.url}/good`), del(`${fx.target.url}/bad`)]);
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.status).toBe('partial');
    expect(result.connections.map((c) => c.status).sort()).toEqual(['failed', 'succeeded']);
  });
});
