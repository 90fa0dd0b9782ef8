/** A connection that fails mid-access: classified by code, and its written reports are listed. */
import { describe, it, expect } from '@jest/globals';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTarget } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';
import { makeLocalSink } from '../src/storage/local.js';

const fx = useFixtures();

describe('a connection failing mid-access (issue 10)', () => {
  it('a reset mid-body is HTTP_NETWORK, and the reports written before it are listed on the failed connection', async () => {
    fx.target = await startTarget((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[{"a":1},{"b":2},');
      setTimeout(() => req.socket.destroy(), 100);
    });
    const conn = connection({ access: [query(`${fx.target.url}/a`)] });
    fx.agent = makeTestAgent([conn]);
    const out = join(fx.agent.dir, 'out');
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'x@y.z' } }, { sink: makeLocalSink(out) });
    const c = result.connections[0]!;
    expect(c.status).toBe('failed');
    expect(c.error?.code).toBe('HTTP_NETWORK');
    expect(c.reports).toEqual([join(out, conn.uuid as string, 'report_1.csv'), join(out, conn.uuid as string, 'report_2.csv')]);
    for (const r of c.reports!) expect(existsSync(r)).toBe(true);
  });

  it('a failure before any report lists none', async () => {
    fx.target = await startTarget((_req, res) => {
      res.writeHead(500);
      res.end();
    });
    fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/a`)] })]);
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'x@y.z' } }, { sink: { put: async () => 'r' } });
    expect(result.connections[0]).not.toHaveProperty('reports');
  });
});
