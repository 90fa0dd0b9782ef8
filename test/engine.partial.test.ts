/** A connection that fails mid-access: classified by code, and its written reports are listed. */
import { describe, it, expect } from '@jest/globals';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTarget } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';
import { makeLocalSink } from '../src/storage/local.js';
import { REPORT_LIST_CAP } from '../src/engine/index.js';
import type { ReportSink } from '../src/storage/sink.js';

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
    expect(c).toMatchObject({ report_count: 2, report_location: join(out, conn.uuid as string) });
  });

  it('past REPORT_LIST_CAP reports, the failed connection names every written report by report_location and report_count', async () => {
    const written = REPORT_LIST_CAP + 2;
    let socket: { destroy(): void } | undefined;
    fx.target = await startTarget((req, res) => {
      socket = req.socket;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`[${Array.from({ length: written }, (_, i) => `{"i":${i + 1}}`).join(',')},`);
    });
    const conn = connection({ access: [query(`${fx.target.url}/a`)] });
    fx.agent = makeTestAgent([conn]);
    const out = join(fx.agent.dir, 'out');
    const local = makeLocalSink(out);
    // The reset comes once the last complete object's report is written: the event, not a delay.
    const sink: ReportSink = {
      put: async (uuid, n, csv) => {
        const where = await local.put(uuid, n, csv);
        if (n === written) socket?.destroy();
        return where;
      },
    };
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'x@y.z' } }, { sink });
    const c = result.connections[0]!;
    expect(c).toMatchObject({ status: 'failed', error: { code: 'HTTP_NETWORK' }, report_count: written, report_location: join(out, conn.uuid as string), reports_truncated: true });
    expect(c.reports).toHaveLength(REPORT_LIST_CAP);
    for (let n = 1; n <= written; n++) expect(existsSync(`${c.report_location}/report_${n}.csv`)).toBe(true);
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
