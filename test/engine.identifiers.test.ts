import { describe, it, expect } from '@jest/globals';
import { startTarget, json } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';

const fx = useFixtures();

describe('identifiers', () => {
  it('collects values per identifier name across queries, de-duplicated', async () => {
    fx.target = await startTarget((req, res) => {
      if (req.url!.startsWith('/phone1')) json(res, 200, [{ primary_phone_number: '+1 555 0100' }, { primary_phone_number: '+1 555 0101' }]);
      else if (req.url!.startsWith('/phone2')) json(res, 200, [{ primary_phone_number: '+1 555 0100' }, { other: 'x' }]);
      else json(res, 200, [{ user_id: '3ef6159b-a523-4ae4-a2b8-6b3ddedf1ab4' }, { user_id: 42 }]);
    });
    fx.agent = makeTestAgent([
      connection({
        identifiers: {
          primary_phone_number: [query(`${fx.target.url}/phone1?email={email}`), query(`${fx.target.url}/phone2?email={email}`)],
          user_id: [query(`${fx.target.url}/uid?email={email}`)],
        },
      }),
    ]);
    const result = await fx.agent.engine.run({ type: 'identifiers', identifiers: { email: 'peter@initech.com' } });
    expect(result.status).toBe('succeeded');
    expect(result.connections[0]!.identifiers).toEqual({
      primary_phone_number: ['+1 555 0100', '+1 555 0101'],
      user_id: ['3ef6159b-a523-4ae4-a2b8-6b3ddedf1ab4', '42'],
    });
  });

  it('fails with RESPONSE_MALFORMED when the response is not an array of objects', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { user_id: 'x' }));
    fx.agent = makeTestAgent([connection({ identifiers: { user_id: [query(`${fx.target.url}/uid?email={email}`)] } })]);
    const result = await fx.agent.engine.run({ type: 'identifiers', identifiers: { email: 'peter@initech.com' } });
    expect(result.connections[0]!.error?.code).toBe('RESPONSE_MALFORMED');
  });

  it('skips connections without the capability and test-mode connections unless named', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, []));
    const live = connection({ identifiers: { user_id: [query(`${fx.target.url}/uid`)] } });
    const testMode = connection({ identifiers: { user_id: [query(`${fx.target.url}/uid`)] } }, { mode: 'test' });
    const noCap = connection({ delete: [query(`${fx.target.url}/d`, { verb: 'DELETE' })] });
    fx.agent = makeTestAgent([live, testMode, noCap]);
    const all = await fx.agent.engine.run({ type: 'identifiers', identifiers: { email: 'a@b.c' } });
    expect(all.connections.map((c) => c.status)).toEqual(['succeeded', 'skipped', 'skipped']);
    expect(all.status).toBe('succeeded');
    const named = await fx.agent.engine.run({ type: 'identifiers', identifiers: { email: 'a@b.c' }, connections: [testMode.name as string] });
    expect(named.connections.map((c) => [c.name, c.status])).toEqual([[testMode.name, 'succeeded']]);
    const namedNoCap = await fx.agent.engine.run({ type: 'identifiers', identifiers: { email: 'a@b.c' }, connections: [noCap.uuid as string] });
    expect(namedNoCap.connections[0]!.error?.code).toBe('CAPABILITY_MISSING');
    await expect(fx.agent.engine.run({ type: 'identifiers', identifiers: { email: 'a@b.c' }, connections: ['nope'] })).rejects.toMatchObject({ code: 'CONNECTION_NOT_FOUND' });
  });

  it('rejects bad identifiers before sending anything', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, []));
    fx.agent = makeTestAgent([connection({ identifiers: { user_id: [query(`${fx.target.url}/uid`)] } })]);
    await expect(fx.agent.engine.run({ type: 'identifiers', identifiers: {} })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(fx.agent.engine.run({ type: 'identifiers', identifiers: { 'bad-name': 'x' } })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(fx.target.received).toHaveLength(0);
  });
});
