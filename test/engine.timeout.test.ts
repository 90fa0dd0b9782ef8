import { describe, it, expect, afterEach } from '@jest/globals';
import { startTarget, json, type Target } from './helpers/target.js';
import { makeTestAgent, connection, query, type TestAgent } from './helpers/agent.js';

let target: Target | undefined;
let agent: TestAgent | undefined;
afterEach(async () => {
  await agent?.close();
  await target?.close();
  agent = target = undefined;
});

describe('job_timeout_seconds', () => {
  it('aborts a hanging request and fails the connection with JOB_TIMEOUT', async () => {
    let closed = false;
    target = await startTarget((req) => {
      req.socket.on('close', () => (closed = true)); // never answers
    });
    agent = makeTestAgent([connection({ access: [query(`${target.url}/users?email={email}`)] })], { top: { job_timeout_seconds: 1 } });
    const started = performance.now();
    const result = await agent.engine.run({ type: 'access', identifiers: { email: 'a@b.c' }, connections: undefined }, { sink: { put: async () => 'x' } });
    expect(result.connections[0]!.error?.code).toBe('JOB_TIMEOUT');
    expect(performance.now() - started).toBeLessThan(5000);
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(true);
  });

  it('is cumulative across the queries of one type', async () => {
    target = await startTarget((_req, res) => {
      setTimeout(() => json(res, 200, {}), 450);
    });
    agent = makeTestAgent(
      [connection({ delete: [query(`${target.url}/1`, { verb: 'DELETE' }), query(`${target.url}/2`, { verb: 'DELETE' }), query(`${target.url}/3`, { verb: 'DELETE' })] })],
      { top: { job_timeout_seconds: 1 } },
    );
    const result = await agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.connections[0]!.error?.code).toBe('JOB_TIMEOUT');
    expect(target.received.length).toBe(3); // the third was sent and aborted in flight
  });

  it('counts retry waits inside the same deadline', async () => {
    target = await startTarget((_req, res) => json(res, 503, {}, { 'retry-after': '5' }));
    agent = makeTestAgent([connection({ delete: [query(`${target.url}/x`, { verb: 'DELETE', fail_retry_response_codes: [503] })] })], {
      top: { job_timeout_seconds: 1, agent: { retry_max_delay_ms: 10_000 } },
    });
    const started = performance.now();
    const result = await agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.connections[0]!.error?.code).toBe('JOB_TIMEOUT');
    expect(performance.now() - started).toBeLessThan(3000);
  });
});
