import { describe, it, expect } from '@jest/globals';
import { startTarget, json } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';
import { memorySink, to, leaks } from './helpers/real-api.js';

const fx = useFixtures();

const DOCUMENT = 'query Subjects($email: String!, $key: String) { dataSubjects(where: {email: {_eq: $email}}) { id did createdAt } }';
const gql = (url: string, graphql: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  query(url, { verb: 'POST', headers: { Authorization: 'Bearer {api_key}' }, graphql, ...extra });
const SECRETS = { default: { api_key: 'gql-key-5b1e' } };
const access = (email = 'peter@initech.com') => ({ type: 'access' as const, identifiers: { email } });

describe('request shape', () => {
  it('a JSON POST of {query, variables, operationName}, variables rendered as JSON strings', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { data: { dataSubjects: [{ id: 1 }] } }));
    const conn = connection({
      access: [gql(`${fx.target.url}/v1/graphql`, { query: DOCUMENT, variables: { email: '{email}', key: 'k:{api_key}' }, operation_name: 'Subjects' }, { records: '/data/dataSubjects' })],
    });
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access(), { sink: memorySink().sink });
    expect(result.status).toBe('succeeded');
    const [r] = fx.target.received;
    expect(r!.method).toBe('POST');
    expect(r!.url).toBe('/v1/graphql');
    expect(r!.headers['content-type']).toBe('application/json');
    expect(r!.headers.authorization).toBe('Bearer gql-key-5b1e');
    expect(r!.body).toBe(JSON.stringify({ query: DOCUMENT, variables: { email: 'peter@initech.com', key: 'k:gql-key-5b1e' }, operationName: 'Subjects' }));
  });

  it('without variables or operation_name: {"query", "variables": {}}; a Content-Type header is kept', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { data: { ok: true } }));
    const conn = connection({
      delete: [query(`${fx.target.url}/gql`, { verb: 'POST', headers: { 'Content-Type': 'application/graphql-response+json' }, graphql: { query: 'mutation { purge }' } })],
    });
    fx.agent = makeTestAgent([conn]);
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.co' } });
    expect(result.status).toBe('succeeded');
    expect(fx.target.received[0]!.headers['content-type']).toBe('application/graphql-response+json');
    expect(JSON.parse(fx.target.received[0]!.body)).toEqual({ query: 'mutation { purge }', variables: {} });
  });

  it('a hostile identifier arrives as exactly one JSON string variable; the document is unchanged byte for byte', async () => {
    const hostile = 'x") { __schema { types { name } } } #\n"$email" \'q\' {email} {{ }} \\ \u2028 $1';
    fx.target = await startTarget((_req, res) => json(res, 200, { data: { dataSubjects: [] } }));
    const conn = connection({ access: [gql(`${fx.target.url}/gql`, { query: DOCUMENT, variables: { email: '{email}' } }, { records: '/data/dataSubjects' })] });
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access(hostile), { sink: memorySink().sink });
    expect(result.status).toBe('succeeded');
    const body = JSON.parse(fx.target.received[0]!.body);
    expect(Object.keys(body).sort()).toEqual(['query', 'variables']);
    expect(body.query).toBe(DOCUMENT);
    expect(body.variables).toEqual({ email: hostile });
    expect(fx.target.received[0]!.body).toContain(JSON.stringify(DOCUMENT));
  });

  it('a document with braces and $ that look like placeholders is sent literally', async () => {
    const doc = 'query { a(x: "{email}", y: "{{") { b } }';
    fx.target = await startTarget((_req, res) => json(res, 200, { data: { ok: 1 } }));
    fx.agent = makeTestAgent([connection({ delete: [query(`${fx.target.url}/gql`, { verb: 'POST', graphql: { query: doc } })] })]);
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.co' } });
    expect(result.status).toBe('succeeded');
    expect(JSON.parse(fx.target.received[0]!.body).query).toBe(doc);
  });
});

describe('GraphQL errors', () => {
  it('a non-empty errors array with status 200 fails with GRAPHQL_ERRORS: messages and paths, the email and the token masked', async () => {
    const email = 'peter@initech.com';
    const TOKEN = 'gql-session-token-ab12';
    fx.target = await startTarget((req, res) => {
      if (req.url === '/login') return json(res, 200, { token: TOKEN });
      json(res, 200, {
        data: null,
        errors: [
          { message: `no data subject ${email} visible to ${TOKEN}`, path: ['dataSubjects', 0, 'email'] },
          { message: `key gql-key-5b1e is read-only`, locations: [{ line: 1, column: 2 }] },
        ],
      });
    });
    const conn = connection(
      { access: [query(`${fx.target.url}/gql`, { verb: 'POST', headers: { Authorization: 'Bearer {session}' }, graphql: { query: DOCUMENT, variables: { email: '{email}' } }, records: '/data/dataSubjects' })] },
      { tokens: { session: { request: { url: `${fx.target.url}/login`, verb: 'POST', verify_ssl: 'true', body: 'key={api_key}' }, value: '/token' } } },
    );
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access(email), { sink: memorySink().sink });
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('GRAPHQL_ERRORS');
    expect(error.message).toContain('2 errors');
    expect(error.message).toContain('"no data subject *** visible to ***" at dataSubjects.0.email');
    expect(error.message).toContain('"key *** is read-only"');
    expect(leaks(JSON.stringify(result) + fx.agent.logs.lines().join('\n'), [email, TOKEN, 'gql-key-5b1e'])).toEqual([]);
  });

  it('shows the first five errors and counts the rest; an error without a string message says so', async () => {
    const errors = [{ message: 42 }, ...Array.from({ length: 6 }, (_, i) => ({ message: `problem ${i + 2}`, path: ['a', i] }))];
    fx.target = await startTarget((_req, res) => json(res, 200, { data: null, errors }));
    fx.agent = makeTestAgent([connection({ delete: [query(`${fx.target.url}/gql`, { verb: 'POST', graphql: { query: 'mutation { d }' } })] })]);
    const error = (await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.co' } })).connections[0]!.error!;
    expect(error.code).toBe('GRAPHQL_ERRORS');
    expect(error.message).toContain('7 errors');
    expect(error.message).toContain('"no message"');
    expect(error.message).toContain('"problem 5" at a.3');
    expect(error.message).not.toContain('problem 6');
    expect(error.message).toContain('and 2 more');
  });

  it('GRAPHQL_ERRORS applies to queries without records too (a delete mutation)', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { data: { deleteUser: null }, errors: [{ message: 'forbidden', path: ['deleteUser'] }] }));
    fx.agent = makeTestAgent([connection({ delete: [query(`${fx.target.url}/gql`, { verb: 'POST', graphql: { query: 'mutation ($e: String!) { deleteUser(email: $e) }', variables: { e: '{email}' } } })] })]);
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.co' } });
    expect(result.connections[0]!.error).toEqual({ code: 'GRAPHQL_ERRORS', message: expect.stringContaining('"forbidden" at deleteUser') });
  });

  it.each([
    ['an empty errors array', { data: { deleteUser: true }, errors: [] }],
    ['errors null', { data: { deleteUser: true }, errors: null }],
    ['no errors member', { data: { deleteUser: true } }],
  ])('%s is success', async (_what, body) => {
    fx.target = await startTarget((_req, res) => json(res, 200, body));
    fx.agent = makeTestAgent([connection({ delete: [query(`${fx.target.url}/gql`, { verb: 'POST', graphql: { query: 'mutation { deleteUser }' } })] })]);
    expect((await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.co' } })).status).toBe('succeeded');
  });

  it('expect works with graphql (a mutation confirming the delete)', async () => {
    fx.target = await startTarget((_req, res, { n }) => json(res, 200, { data: { deleteUser: { ok: n === 1 } } }));
    const conn = connection({ delete: [query(`${fx.target.url}/gql`, { verb: 'POST', graphql: { query: 'mutation { deleteUser { ok } }' }, expect: { '/data/deleteUser/ok': true } })] });
    fx.agent = makeTestAgent([conn]);
    expect((await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.co' } })).status).toBe('succeeded');
    const second = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.co' } });
    expect(second.connections[0]!.error?.code).toBe('RESPONSE_UNEXPECTED');
    expect(second.connections[0]!.error?.message).toContain('/data/deleteUser/ok');
  });
});

describe('records', () => {
  it('records under /data/x: one report per element', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { data: { x: [{ id: 1, name: 'Peter' }, { id: 2, name: 'Bill' }] } }));
    fx.agent = makeTestAgent([connection({ access: [gql(`${fx.target.url}/gql`, { query: DOCUMENT, variables: { email: '{email}' } }, { records: '/data/x' })] })], { secrets: SECRETS });
    const { sink, puts } = memorySink();
    const result = await fx.agent.engine.run(access(), { sink });
    expect(result.status).toBe('succeeded');
    expect(puts.map((p) => p.csv)).toEqual(['id,1\nname,Peter\n', 'id,2\nname,Bill\n']);
  });

  it('null at /data/x: no reports, success', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { data: { x: null } }));
    fx.agent = makeTestAgent([connection({ access: [gql(`${fx.target.url}/gql`, { query: DOCUMENT, variables: { email: '{email}' } }, { records: '/data/x' })] })], { secrets: SECRETS });
    const { sink, puts } = memorySink();
    const result = await fx.agent.engine.run(access(), { sink });
    expect(result.connections[0]).toMatchObject({ status: 'succeeded', reports: [] });
    expect(puts).toHaveLength(0);
  });

  it('data null with errors: GRAPHQL_ERRORS, not RESPONSE_MALFORMED', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { errors: [{ message: 'boom' }], data: null }));
    fx.agent = makeTestAgent([connection({ access: [gql(`${fx.target.url}/gql`, { query: DOCUMENT, variables: { email: '{email}' } }, { records: '/data/x' })] })], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access(), { sink: memorySink().sink });
    expect(result.connections[0]!.error?.code).toBe('GRAPHQL_ERRORS');
  });
});

describe('cursor pagination through a variable', () => {
  it('sends $cursor as "" first, then each endCursor, until it is null', async () => {
    const pages: Record<string, { nodes: unknown[]; end: string | null }> = {
      '': { nodes: [{ id: 1 }, { id: 2 }], end: 'Y3Vyc29yOjI=' },
      'Y3Vyc29yOjI=': { nodes: [{ id: 3 }], end: 'Y3Vyc29yOjM=' },
      'Y3Vyc29yOjM=': { nodes: [{ id: 4 }], end: null },
    };
    fx.target = await startTarget((_req, res, { body }) => {
      const { variables } = JSON.parse(body) as { variables: { cursor: string } };
      const page = pages[variables.cursor] ?? { nodes: [], end: null };
      json(res, 200, { data: { users: { nodes: page.nodes, pageInfo: { endCursor: page.end } } } });
    });
    const conn = connection({
      access: [
        gql(
          `${fx.target.url}/gql`,
          { query: 'query ($email: String!, $cursor: String) { users(email: $email, after: $cursor) { nodes { id } pageInfo { endCursor } } }', variables: { email: '{email}', cursor: '{cursor}' } },
          { records: '/data/users/nodes', paginate: { style: 'cursor', cursor: '/data/users/pageInfo/endCursor' } },
        ),
      ],
    });
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const { sink, puts } = memorySink();
    const result = await fx.agent.engine.run(access(), { sink });
    expect(result.status).toBe('succeeded');
    expect(to(fx.target.received, '/gql').map((r) => JSON.parse(r.body).variables)).toEqual([
      { email: 'peter@initech.com', cursor: '' },
      { email: 'peter@initech.com', cursor: 'Y3Vyc29yOjI=' },
      { email: 'peter@initech.com', cursor: 'Y3Vyc29yOjM=' },
    ]);
    expect(puts.map((p) => [p.n, p.csv])).toEqual([
      [1, 'id,1\n'],
      [2, 'id,2\n'],
      [3, 'id,3\n'],
      [4, 'id,4\n'],
    ]);
  });
});
