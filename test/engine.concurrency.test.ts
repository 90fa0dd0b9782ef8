import { describe, it, expect } from '@jest/globals';
import { startTarget, json } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';

const fx = useFixtures();

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
  it('runs connections concurrently under fx.agent.connection_concurrency, and one connection\'s queries in order', async () => {
    const { t, stats } = await countingTarget();
    fx.target = t;
    const conns = Array.from({ length: 12 }, () => connection({ delete: [query(`${t.url}/a`, { verb: 'DELETE' }), query(`${t.url}/b`, { verb: 'DELETE' })] }));
    fx.agent = makeTestAgent(conns, { top: { agent: { connection_concurrency: 3 } } });
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.status).toBe('succeeded');
    expect(stats.max).toBe(3);
    expect(t.received).toHaveLength(24);
  });

  it('defaults to 8 connections at once', async () => {
    const { t, stats } = await countingTarget();
    fx.target = t;
    fx.agent = makeTestAgent(Array.from({ length: 12 }, () => connection({ delete: [query(`${t.url}/a`, { verb: 'DELETE' })] })));
    await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(stats.max).toBe(8);
  });
});

describe('request steps', () => {
  it('a step sees every rendered request before it is sent (the hook for token exchanges)', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, {}));
    fx.agent = makeTestAgent([connection({ delete: [query(`${fx.target.url}/a`, { verb: 'DELETE' })] })], {
      deps: { steps: [async (req) => ({ ...req, headers: { ...req.headers, Authorization: 'Bearer exchanged' } })] },
    });
    await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(fx.target.received[0]!.headers.authorization).toBe('Bearer exchanged');
  });
});
