import { describe, it, expect } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startTarget, json } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';
import { makeLocalSink } from '../src/storage/local.js';
import type { ReportSink } from '../src/storage/sink.js';
import { REPORT_LIST_CAP } from '../src/engine/index.js';

const fx = useFixtures();

const SEED_RESPONSE = [
  { first_name: 'Peter', last_name: 'Gibbons', company: 'Initech', friends: ['Samir', 'Michael'] },
  { address_type: 'Home', address: { street: '191 N. Lamar', city: 'Flander', state: 'Illinois', zip_code: '77070' } },
];

describe('access', () => {
  it("turns the seed's example response into exactly its report_1.csv and report_2.csv", async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, SEED_RESPONSE));
    const conn = connection({ access: [query(`${fx.target.url}/v0/users?email={email}`)] });
    fx.agent = makeTestAgent([conn]);
    const out = join(fx.agent.dir, 'out');
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'peter@initech.com' } }, { sink: makeLocalSink(out) });
    expect(result.status).toBe('succeeded');
    const uuid = conn.uuid as string;
    expect(readdirSync(join(out, uuid)).sort()).toEqual(['report_1.csv', 'report_2.csv']);
    expect(result.connections[0]!.reports).toEqual([join(out, uuid, 'report_1.csv'), join(out, uuid, 'report_2.csv')]);
    expect(result.connections[0]).toMatchObject({ report_count: 2, report_location: join(out, uuid) });
    expect(result.connections[0]).not.toHaveProperty('reports_truncated');
    expect(readFileSync(join(out, uuid, 'report_1.csv'), 'utf8')).toBe('first_name,Peter\nlast_name,Gibbons\ncompany,Initech\nfriends_0,Samir\nfriends_1,Michael\n');
    expect(readFileSync(join(out, uuid, 'report_2.csv'), 'utf8')).toBe(
      'address_type,Home\naddress_street,191 N. Lamar\naddress_city,Flander\naddress_state,Illinois\naddress_zip_code,77070\n',
    );
    expect(fx.target.received[0]!.url).toBe('/v0/users?email=peter%40initech.com');
    expect(fx.target.received[0]!.headers.authorization).toBe('Basic dXNlcjpwYXNz');
  });

  it('numbers reports in order across the connection\'s access queries', async () => {
    fx.target = await startTarget((req, res) => json(res, 200, req.url === '/a' ? [{ a: 1 }, { a: 2 }] : [{ b: 3 }]));
    const conn = connection({ access: [query(`${fx.target.url}/a`), query(`${fx.target.url}/b`)] });
    fx.agent = makeTestAgent([conn]);
    const puts: string[] = [];
    const sink: ReportSink = { put: async (uuid, n, csv) => (puts.push(`${n}:${csv.trim()}`), `${uuid}/${n}`) };
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'x@y.z' } }, { sink });
    expect(puts).toEqual(['1:a,1', '2:a,2', '3:b,3']);
    expect(result.connections[0]!.reports).toHaveLength(3);
  });

  it('lists the first REPORT_LIST_CAP report locations, and names every report by report_location and report_count', async () => {
    const count = REPORT_LIST_CAP + 5;
    fx.target = await startTarget((_req, res) => json(res, 200, Array.from({ length: count }, (_, i) => ({ i: i + 1 }))));
    const conn = connection({ access: [query(`${fx.target.url}/a`)] });
    fx.agent = makeTestAgent([conn]);
    const out = join(fx.agent.dir, 'out');
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'x@y.z' } }, { sink: makeLocalSink(out) });
    const c = result.connections[0]!;
    const folder = join(out, conn.uuid as string);
    expect(c).toMatchObject({ status: 'succeeded', report_count: count, report_location: folder, reports_truncated: true });
    expect(c.reports).toEqual(Array.from({ length: REPORT_LIST_CAP }, (_, i) => join(folder, `report_${i + 1}.csv`)));
    // Every report the result names is the file written for that object, and no other file exists.
    expect(readdirSync(folder)).toHaveLength(count);
    for (const n of [1, REPORT_LIST_CAP, REPORT_LIST_CAP + 1, count]) expect(readFileSync(`${c.report_location}/report_${n}.csv`, 'utf8')).toBe(`i,${n}\n`);
  });

  it('keeps every location when the sink returns locations that do not follow one folder', async () => {
    const count = REPORT_LIST_CAP + 3;
    fx.target = await startTarget((_req, res) => json(res, 200, Array.from({ length: count }, (_, i) => ({ i }))));
    fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/a`)] })]);
    const sink: ReportSink = { put: async (_uuid, n) => `mem:${n}` };
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'x@y.z' } }, { sink });
    const c = result.connections[0]!;
    expect(c.reports).toEqual(Array.from({ length: count }, (_, i) => `mem:${i + 1}`));
    expect(c.report_count).toBe(count);
    expect(c).not.toHaveProperty('report_location');
    expect(c).not.toHaveProperty('reports_truncated');
  });

  it.each([
    ['an object', '{"first_name":"Peter"}'],
    ['a string', '"hello"'],
    ['invalid JSON', '[{"a": 1}, {"b": '],
    ['HTML', '<html>oops</html>'],
    ['an array of non-objects', '[1, 2]'],
  ])('fails the connection with RESPONSE_MALFORMED on %s, and logs the body only at DEBUG', async (_what, body) => {
    fx.target = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    for (const level of ['INFO', 'DEBUG']) {
      fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/a`)] })], { level });
      const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'x@y.z' } }, { sink: { put: async () => 'x' } });
      expect(result.connections[0]!.error?.code).toBe('RESPONSE_MALFORMED');
      expect(result.connections[0]!.error?.message).not.toContain(body);
      const logged = fx.agent.logs.lines().some((l) => l.includes(JSON.stringify(body).slice(1, -1)));
      expect(logged).toBe(level === 'DEBUG');
      await fx.agent.close();
      fx.agent = undefined;
    }
  });

  it('fails with RESPONSE_OBJECT_TOO_LARGE when one object passes max_object_bytes', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, [{ small: 1 }, { big: 'x'.repeat(2 * 1024 * 1024) }]));
    fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/a`)] })], { top: { agent: { max_object_bytes: 1024 * 1024 } } });
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'x@y.z' } }, { sink: { put: async () => 'x' } });
    expect(result.connections[0]!.error?.code).toBe('RESPONSE_OBJECT_TOO_LARGE');
  });

  it('fails when the target drops the connection mid-body', async () => {
    fx.target = await startTarget((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[{"a":1},{"b":');
      setTimeout(() => req.socket.destroy(), 50);
    });
    fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/a`)] })]);
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'x@y.z' } }, { sink: { put: async () => 'x' } });
    expect(result.status).toBe('failed');
  });

  // In a child process, the way the CLI runs the engine.
  it.each(['bare', 'envelope'])('streams a 300 MB response (%s) with memory bounded by the largest object, not the body', (shape) => {
    const out = execFileSync(process.execPath, ['--expose-gc', join(process.cwd(), 'test/fixtures/memory-access.mjs'), shape], { encoding: 'utf8' });
    const r = JSON.parse(out.trim().split('\n').pop()!);
    expect(r.status).toBe('succeeded');
    expect(r.reports).toBe(300);
    // The event that proves streaming: the first report is written while the target is still sending the
    // 300 MB (buffering would wait for its end). The memory figure itself is the memory benchmark's to judge.
    expect(r.sending_at_first_report).toBe(true);
  }, 60_000);
});

describe('access: a data subject that does not exist', () => {
  it('a valid 404 (or 204) means no data: no report, no parse error', async () => {
    fx.target = await startTarget((req, res) => {
      if (req.url === '/gone') return json(res, 404, { error: 'no such user' });
      res.writeHead(204);
      res.end();
    });
    fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/gone`, { valid_response_codes: [200, 404] }), query(`${fx.target.url}/empty`, { valid_response_codes: [200, 204] })] })]);
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'x@y.z' } }, { sink: { put: async () => 'x' } });
    expect(result.connections[0]).toMatchObject({ status: 'succeeded', reports: [], report_count: 0 });
    expect(result.connections[0]).not.toHaveProperty('report_location');
  });
});
