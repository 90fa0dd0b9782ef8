import { describe, it, expect } from '@jest/globals';
import { startTarget, json } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';
import { memorySink } from './helpers/real-api.js';

const fx = useFixtures();

const access = (email = 'peter@initech.com') => ({ type: 'access' as const, identifiers: { email } });
const del = (email = 'peter@initech.com') => ({ type: 'delete' as const, identifiers: { email } });

/** Close this test's agent and target early (to start another pair). */
async function closeFixtures() {
  await fx.agent?.close();
  await fx.target?.close();
  fx.agent = fx.target = undefined;
}

/** Run one access query with `extra` fields against a target answering `body`; the reports and the result. */
async function accessWith(body: unknown, extra: Record<string, unknown>, level = 'INFO') {
  fx.target = await startTarget((_req, res) => json(res, 200, body));
  fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/users?email={email}`, extra)] })], { level });
  const { sink, puts } = memorySink();
  const result = await fx.agent.engine.run(access(), { sink });
  return { result, puts, conn: result.connections[0]! };
}

describe('records', () => {
  it('an array at the pointer: one report per element (Dataships style envelope)', async () => {
    const { conn, puts } = await accessWith({ status: 'success', response: [{ id: 1 }, { id: 2 }], meta: { page: 1 } }, { records: '/response' });
    expect(conn.status).toBe('succeeded');
    expect(puts.map((p) => [p.n, p.csv])).toEqual([
      [1, 'id,1\n'],
      [2, 'id,2\n'],
    ]);
  });

  it('an object at the pointer: one report', async () => {
    const { conn, puts } = await accessWith({ data: { user: { name: 'Peter', company: 'Initech' } } }, { records: '/data/user' });
    expect(conn.status).toBe('succeeded');
    expect(puts.map((p) => p.csv)).toEqual(['name,Peter\ncompany,Initech\n']);
  });

  it('"" is the whole body: an object body is one record', async () => {
    const { conn, puts } = await accessWith({ name: 'Peter' }, { records: '' });
    expect(conn.status).toBe('succeeded');
    expect(puts.map((p) => p.csv)).toEqual(['name,Peter\n']);
  });

  it('null at the pointer: no records, success', async () => {
    const { conn, puts } = await accessWith({ status: 'success', response: null }, { records: '/response' });
    expect(conn).toMatchObject({ status: 'succeeded', reports: [] });
    expect(puts).toHaveLength(0);
  });

  it('an empty array at the pointer: no records, success', async () => {
    const { conn } = await accessWith({ response: [] }, { records: '/response' });
    expect(conn).toMatchObject({ status: 'succeeded', reports: [] });
  });

  it('a pointer with escapes and an array index', async () => {
    const { conn, puts } = await accessWith({ 'a/b': [{ 'c~d': [{ id: 5 }] }] }, { records: '/a~1b/0/c~0d' });
    expect(conn.status).toBe('succeeded');
    expect(puts.map((p) => p.csv)).toEqual(['id,5\n']);
  });

  it('nothing at the pointer: RESPONSE_MALFORMED naming the pointer', async () => {
    const { conn } = await accessWith({ status: 'success', result: [{ id: 1 }] }, { records: '/response' });
    expect(conn.error?.code).toBe('RESPONSE_MALFORMED');
    expect(conn.error?.message).toContain('"/response"');
  });

  it.each([
    ['a string', 'peter@initech.com has secret-value-31'],
    ['a number', 31415926],
    ['a boolean', true],
  ])('%s at the pointer: RESPONSE_MALFORMED naming the pointer and the type, never the value', async (type, value) => {
    for (const level of ['INFO', 'DEBUG']) {
      const { conn } = await accessWith({ response: value }, { records: '/response' }, level);
      expect(conn.error?.code).toBe('RESPONSE_MALFORMED');
      expect(conn.error?.message).toContain('"/response"');
      expect(conn.error?.message).toContain(type);
      expect(conn.error?.message).not.toContain(String(value));
      expect(conn.error?.message).not.toContain('secret-value-31');
      await closeFixtures();
    }
  });

  it('an array of non-objects at the pointer: RESPONSE_MALFORMED', async () => {
    const { conn } = await accessWith({ response: [1, 2] }, { records: '/response' });
    expect(conn.error?.code).toBe('RESPONSE_MALFORMED');
  });

  it('without records the body must be a bare array, as before: an envelope is RESPONSE_MALFORMED', async () => {
    const { conn } = await accessWith({ status: 'success', response: [{ id: 1 }] }, {});
    expect(conn.error?.code).toBe('RESPONSE_MALFORMED');
    await closeFixtures();
    const bare = await accessWith([{ id: 1 }, { id: 2 }], {});
    expect(bare.puts).toHaveLength(2);
  });

  it('identifiers queries read records at the pointer too', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { status: 'success', response: [{ user_id: 'u-1' }, { user_id: 'u-2' }, { user_id: null }] }));
    fx.agent = makeTestAgent([connection({ identifiers: { user_id: [query(`${fx.target.url}/ids?email={email}`, { records: '/response' })] } })]);
    const result = await fx.agent.engine.run({ type: 'identifiers', identifiers: { email: 'a@b.co' } });
    expect(result.connections[0]).toMatchObject({ status: 'succeeded', identifiers: { user_id: ['u-1', 'u-2'] } });
  });

  it('identifiers: nothing at the pointer is RESPONSE_MALFORMED', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { status: 'success' }));
    fx.agent = makeTestAgent([connection({ identifiers: { user_id: [query(`${fx.target.url}/ids?email={email}`, { records: '/response' })] } })]);
    const result = await fx.agent.engine.run({ type: 'identifiers', identifiers: { email: 'a@b.co' } });
    expect(result.connections[0]!.error?.code).toBe('RESPONSE_MALFORMED');
    expect(result.connections[0]!.error?.message).toContain('"/response"');
  });
});

describe('expect on delete', () => {
  async function deleteWith(status: number, body: unknown, extra: Record<string, unknown> = {}, level = 'INFO') {
    fx.target = await startTarget((_req, res) => {
      if (status !== 204) return json(res, status, body);
      res.writeHead(204);
      res.end();
    });
    const q = query(`${fx.target.url}/v1/erase`, {
      verb: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{{"email": "{email}"}}',
      expect: { '/status': 'success', '/response': true },
      ...extra,
    });
    fx.agent = makeTestAgent([connection({ delete: [q] })], { level });
    return (await fx.agent.engine.run(del())).connections[0]!;
  }

  it('Dataships style {"status":"success","response":true} passes', async () => {
    expect(await deleteWith(200, { status: 'success', response: true, meta: { took: 12 } })).toMatchObject({ status: 'succeeded' });
  });

  it('{"status":"declined-7d1f"}: RESPONSE_UNEXPECTED naming /status and "success", not the actual value', async () => {
    const conn = await deleteWith(200, { status: 'declined-7d1f', response: true });
    expect(conn.error?.code).toBe('RESPONSE_UNEXPECTED');
    expect(conn.error?.message).toContain('"/status"');
    expect(conn.error?.message).toContain('"success"');
    expect(conn.error?.message).not.toContain('declined-7d1f');
    expect(fx.agent!.logs.lines().join('\n')).not.toContain('declined-7d1f');
  });

  it('the actual value is logged at DEBUG only, masked', async () => {
    const conn = await deleteWith(200, { status: 'no user peter@initech.com declined-7d1f', response: true }, {}, 'DEBUG');
    expect(conn.error?.code).toBe('RESPONSE_UNEXPECTED');
    const logs = fx.agent!.logs.lines().join('\n');
    expect(logs).toContain('declined-7d1f');
    expect(logs).not.toContain('peter@initech.com');
  });

  it('a member that is not there: RESPONSE_UNEXPECTED saying so', async () => {
    const conn = await deleteWith(200, { response: true });
    expect(conn.error?.code).toBe('RESPONSE_UNEXPECTED');
    expect(conn.error?.message).toContain('"/status"');
    expect(conn.error?.message).toMatch(/nothing is there/);
  });

  it.each([
    ['true vs "true"', { status: 'success', response: 'true' }],
    ['true vs 1', { status: 'success', response: 1 }],
    ['"success" vs "Success"', { status: 'Success', response: true }],
  ])('JSON equality, no coercion: %s fails', async (_what, body) => {
    expect((await deleteWith(200, body)).error?.code).toBe('RESPONSE_UNEXPECTED');
  });

  it('objects and arrays compare by value, object members in any order', async () => {
    const expectation = { '/result': { deleted: [1, 2], ok: true } };
    expect(await deleteWith(200, { result: { ok: true, deleted: [1, 2] } }, { expect: expectation })).toMatchObject({ status: 'succeeded' });
    await closeFixtures();
    expect((await deleteWith(200, { result: { ok: true, deleted: [2, 1] } }, { expect: expectation })).error?.code).toBe('RESPONSE_UNEXPECTED');
  });

  it('a 404 listed in valid_response_codes is not checked (the subject does not exist)', async () => {
    const conn = await deleteWith(404, { status: 'error', message: 'not found' }, { valid_response_codes: [200, 404] });
    expect(conn).toMatchObject({ status: 'succeeded' });
  });

  it('a 204 is not checked (no body)', async () => {
    expect(await deleteWith(204, undefined, { valid_response_codes: [200, 204] })).toMatchObject({ status: 'succeeded' });
  });

  it('a non-JSON 200 body fails (the confirmation cannot be read)', async () => {
    fx.target = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('OK');
    });
    fx.agent = makeTestAgent([connection({ delete: [query(`${fx.target.url}/d`, { verb: 'DELETE', expect: { '/status': 'success' } })] })]);
    const conn = (await fx.agent.engine.run(del())).connections[0]!;
    expect(conn.status).toBe('failed');
    expect(['RESPONSE_MALFORMED', 'RESPONSE_UNEXPECTED']).toContain(conn.error?.code);
  });

  it('expect on optout and test queries too', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { status: 'error' }));
    const q = query(`${fx.target.url}/x`, { verb: 'PUT', expect: { '/status': 'success' } });
    fx.agent = makeTestAgent([connection({ optout: [q], test: [q] })]);
    expect((await fx.agent.engine.run({ type: 'optout', identifiers: { email: 'a@b.co' } })).connections[0]!.error?.code).toBe('RESPONSE_UNEXPECTED');
    const [health] = await fx.agent.engine.test();
    expect(health).toMatchObject({ healthy: false, error: { code: 'RESPONSE_UNEXPECTED' } });
  });
});

describe('expect on access', () => {
  it('passes alongside records', async () => {
    const { conn, puts } = await accessWith({ status: 'success', response: [{ id: 1 }] }, { records: '/response', expect: { '/status': 'success' } });
    expect(conn.status).toBe('succeeded');
    expect(puts).toHaveLength(1);
  });

  it('a response that does not hold the value fails the connection with RESPONSE_UNEXPECTED', async () => {
    const { conn } = await accessWith({ status: 'partial', response: [{ id: 1 }] }, { records: '/response', expect: { '/status': 'success' } });
    expect(conn.status).toBe('failed');
    expect(conn.error?.code).toBe('RESPONSE_UNEXPECTED');
    expect(conn.error?.message).toContain('"/status"');
    expect(conn.error?.message).not.toContain('partial');
  });

  it('the check holds whatever the member order (status after the records)', async () => {
    fx.target = await startTarget((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"response":[{"id":1},{"id":2}],"status":"error"}');
    });
    fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/u`, { records: '/response', expect: { '/status': 'success' } })] })]);
    const result = await fx.agent.engine.run(access(), { sink: memorySink().sink });
    expect(result.connections[0]!.error?.code).toBe('RESPONSE_UNEXPECTED');
  });

  it('a 404 listed in valid_response_codes is not checked', async () => {
    fx.target = await startTarget((_req, res) => json(res, 404, { status: 'not_found' }));
    fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/u`, { valid_response_codes: [200, 404], records: '/response', expect: { '/status': 'success' } })] })]);
    const result = await fx.agent.engine.run(access(), { sink: memorySink().sink });
    expect(result.connections[0]).toMatchObject({ status: 'succeeded', reports: [] });
  });
});
