/**
 * What a target sends back is masked before it is shortened or reshaped, whatever case or encoding
 * the target echoes a value in.
 */
import { describe, it, expect } from '@jest/globals';
import { makeMask } from '../src/engine/mask.js';
import { startTarget, json } from './helpers/target.js';
import { makeTestAgent, connection, useFixtures } from './helpers/agent.js';

const fx = useFixtures();
const EMAIL = 'Peter.Gibbons@Initech-Corporation.com';

describe('makeMask', () => {
  it('masks a value in any case, JSON-escaped, percent- and form-encoded', () => {
    const mask = makeMask([EMAIL, 'Peter Gibbons', 'say "hi"']);
    expect(mask(`no user ${EMAIL.toLowerCase()}`)).toBe('no user ***');
    expect(mask('name=Peter+Gibbons not found')).toBe('name=*** not found');
    expect(mask('q=Peter%20Gibbons')).toBe('q=***');
    expect(mask('{"v":"say \\"hi\\""}')).toBe('{"v":"***"}');
  });
});

describe('GraphQL errors', () => {
  it.each([250, 280, 295, 299])('masks an identifier that a 300-character cut would split (at %i)', async (at) => {
    const message = `${'y'.repeat(at)}${EMAIL} is not a data subject`;
    fx.target = await startTarget((_req, res) => json(res, 200, { errors: [{ message, path: ['dataSubjects'] }] }));
    const q = { url: `${fx.target.url}/graphql`, verb: 'POST', verify_ssl: 'true', records: '/data/dataSubjects', graphql: { query: 'query ($e: String!) { dataSubjects(email: $e) { id } }', variables: { e: '{email}' } } };
    fx.agent = makeTestAgent([connection({ access: [q] })]);
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: EMAIL } }, { sink: { put: async () => 'r' } });
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('GRAPHQL_ERRORS');
    // No 8-character piece of the email survives anywhere in the message.
    for (let i = 0; i + 8 <= EMAIL.length; i++) expect(error.message.toLowerCase()).not.toContain(EMAIL.slice(i, i + 8).toLowerCase());
    if (at + 3 < 300) expect(error.message).toContain('***'); // the mask, not the cut, removed it
  });
});
