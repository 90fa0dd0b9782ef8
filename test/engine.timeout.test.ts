import { describe, it, expect } from '@jest/globals';
import { startTarget, json } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';

const fx = useFixtures();

describe('job_timeout_seconds', () => {
  it('aborts a hanging request and fails the connection with JOB_TIMEOUT', async () => {
    let closed = false;
    fx.target = await startTarget((req) => {
      req.socket.on('close', () => (closed = true)); // never answers
    });
    fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/users?email={email}`)] })], { top: { job_timeout_seconds: 1 } });
    const started = performance.now();
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'a@b.c' }, connections: undefined }, { sink: { put: async () => 'x' } });
    expect(result.connections[0]!.error?.code).toBe('JOB_TIMEOUT');
    expect(performance.now() - started).toBeLessThan(5000);
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(true);
  });

  it('is cumulative across the queries of one type', async () => {
    fx.target = await startTarget((_req, res) => {
      setTimeout(() => json(res, 200, {}), 450);
    });
    fx.agent = makeTestAgent(
      [connection({ delete: [query(`${fx.target.url}/1`, { verb: 'DELETE' }), query(`${fx.target.url}/2`, { verb: 'DELETE' }), query(`${fx.target.url}/3`, { verb: 'DELETE' })] })],
      { top: { job_timeout_seconds: 1 } },
    );
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.connections[0]!.error?.code).toBe('JOB_TIMEOUT');
    expect(fx.target.received.length).toBe(3); // the third was sent and aborted in flight
  });

  it('counts retry waits inside the same deadline', async () => {
    fx.target = await startTarget((_req, res) => json(res, 503, {}, { 'retry-after': '5' }));
    fx.agent = makeTestAgent([connection({ delete: [query(`${fx.target.url}/x`, { verb: 'DELETE', fail_retry_response_codes: [503] })] })], {
      top: { job_timeout_seconds: 1, agent: { retry_max_delay_ms: 10_000 } },
    });
    const started = performance.now();
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.connections[0]!.error?.code).toBe('JOB_TIMEOUT');
    expect(performance.now() - started).toBeLessThan(3000);
  });
});
