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

/** A target that answers after 100 ms and records the most requests it held at once. */
async function countingTarget() {
  let inFlight = 0;
  const stats = { max: 0 };
  const t = await startTarget((_req, res) => {
    inFlight++;
    stats.max = Math.max(stats.max, inFlight);
    setTimeout(() => {
      inFlight--;
      json(res, 200, {});
    }, 100);
  });
  return { t, stats };
}

describe('concurrency', () => {
  it('runs connections concurrently under agent.connection_concurrency, and one connection\'s queries in order', async () => {
    const { t, stats } = await countingTarget();
    target = t;
    const conns = Array.from({ length: 12 }, () => connection({ delete: [query(`${t.url}/a`, { verb: 'DELETE' }), query(`${t.url}/b`, { verb: 'DELETE' })] }));
    agent = makeTestAgent(conns, { top: { agent: { connection_concurrency: 3 } } });
    const result = await agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.status).toBe('succeeded');
    expect(stats.max).toBe(3);
    expect(t.received).toHaveLength(24);
  });

  it('defaults to 8 connections at once', async () => {
    const { t, stats } = await countingTarget();
    target = t;
    agent = makeTestAgent(Array.from({ length: 12 }, () => connection({ delete: [query(`${t.url}/a`, { verb: 'DELETE' })] })));
    await agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(stats.max).toBe(8);
  });
});

describe('request steps', () => {
  it('a step sees every rendered request before it is sent (the hook for token exchanges)', async () => {
    target = await startTarget((_req, res) => json(res, 200, {}));
    agent = makeTestAgent([connection({ delete: [query(`${target.url}/a`, { verb: 'DELETE' })] })], {
      deps: { steps: [async (req) => ({ ...req, headers: { ...req.headers, Authorization: 'Bearer exchanged' } })] },
    });
    await agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(target.received[0]!.headers.authorization).toBe('Bearer exchanged');
  });
});
