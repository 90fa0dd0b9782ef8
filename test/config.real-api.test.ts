import type { APIProxyConnection } from '../src/config/types.js';
import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { listConfigProblems, validateConfig } from '../src/config/validate.js';
import { DEFAULT_PAGINATE } from '../src/config/normalize.js';
import { readSchemas } from '../src/config/schemas.js';
import { isAgentError } from '../src/errors.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/config/${name}`, import.meta.url), 'utf8'));
const seed = () => fixture('seed-connection.json');
const wrap = (...connections: unknown[]) => ({ ...fixture('minimal.json'), connections });

const TEST = [{ url: 'https://api.example.com/health', verb: 'GET', verify_ssl: 'true' }];
const q = (over: Record<string, unknown> = {}) => ({ url: 'https://api.example.com/x?email={email}', verb: 'GET', verify_ssl: 'true', ...over });
const LOGIN = { url: 'https://auth.example.com/token', verb: 'POST', verify_ssl: 'true', body: 'key={api_key}' };

/** The seed connection with these queries (capabilities follow them) and extra fields. */
function conn(queries: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const capabilities = ['access', 'delete', 'optout', 'identifiers'].filter((t) => t in queries).map((t) => `privacy/${t}`);
  return { ...seed(), capabilities, queries: { test: TEST, ...queries }, ...extra };
}
/** A connection with one access query, plus `extra` connection fields. */
const withAccess = (query: Record<string, unknown>, extra: Record<string, unknown> = {}) => conn({ access: [q(query)] }, extra);
const withTokens = (tokens: Record<string, unknown>, queries: Record<string, unknown> = { access: [q({ headers: { Authorization: 'Bearer {session}' } })] }) =>
  conn(queries, { tokens });
const problems = (c: unknown) => listConfigProblems(wrap(c));

const A = '/connections/0/queries/access/0';

/** The only problem is at `path`, and its message contains each of `parts`. */
function expectOnly(c: unknown, path: string, ...parts: string[]) {
  const found = problems(c);
  expect(found.map((p) => p.path)).toEqual([path]);
  for (const part of parts) expect(found[0]!.message).toContain(part);
}

describe('the new fields are valid when used right', () => {
  it('a config using every new field has no problems', () => {
    const c = conn(
      {
        access: [
          q({ headers: { Authorization: 'Bearer {session}' }, url: 'https://api.example.com/x?email={email}&page={page}&n={page_size}', records: '/data', expect: { '/status': 'success' }, paginate: { style: 'page', start: 0, size: 50, total: '/meta/total', max_pages: 10 } }),
          q({ url: 'https://api.example.com/c?c={cursor}', records: '/items', paginate: { style: 'cursor', cursor: '/next' } }),
          q({ url: 'https://api.example.com/o?o={offset}', paginate: { style: 'offset', size: 10 } }),
          q({ url: 'https://api.example.com/l', paginate: { style: 'link' } }),
          q({ url: 'https://api.example.com/gql', verb: 'POST', graphql: { query: 'query ($e: String!, $c: String) { u(e: $e, after: $c) { id } }', variables: { e: '{email}', c: '{cursor}' }, operation_name: 'U' }, records: '/data/u', paginate: { style: 'cursor', cursor: '/data/next' } }),
        ],
        delete: [q({ verb: 'POST', graphql: { query: 'mutation { d }' }, expect: { '/data/d': true } })],
        identifiers: { user_id: [q({ records: '/users', expect: { '/ok': true }, paginate: { style: 'page', size: 20 }, url: 'https://api.example.com/i?e={email}&p={page}' })] },
      },
      {
        tokens: {
          base: { request: { ...LOGIN, expect: { '/ok': true } }, value: '/access_token', expires_in: '/expires_in' },
          session: { request: { ...LOGIN, headers: { Authorization: 'Bearer {base}' } }, value: '/t', ttl_seconds: 60 },
          other: { request: LOGIN, value: '/t', expires_at: '/exp' },
        },
      },
    );
    expect(problems(c)).toEqual([]);
  });

  it('an expect pointer sharing only a string prefix with records is not inside it', () => {
    expect(problems(withAccess({ records: '/data', expect: { '/database': 1 } }))).toEqual([]);
  });

  it('{page} used only in a header or a GraphQL variable counts as used', () => {
    expect(problems(withAccess({ headers: { 'X-Page': '{page}' }, paginate: { style: 'page' } }))).toEqual([]);
    expect(problems(withAccess({ verb: 'POST', graphql: { query: 'q', variables: { p: '{page}' } }, records: '/d', paginate: { style: 'page' } }))).toEqual([]);
  });
});

describe('pointer syntax', () => {
  it.each([
    ['records', { records: 'data.users' }, `${A}/records`, '"/data/users"'],
    ['expect', { expect: { status: 'success' } }, `${A}/expect/status`, '"/status"'],
    ['paginate.total', { records: '/data', url: 'https://x.example/?p={page}', paginate: { style: 'page', total: 'meta.total' } }, `${A}/paginate/total`, '"/meta/total"'],
    ['paginate.cursor', { records: '/data', url: 'https://x.example/?c={cursor}', paginate: { style: 'cursor', cursor: '#/meta/next' } }, `${A}/paginate/cursor`, '"/meta/next"'],
    ['records with a bad ~ escape', { records: '/a~2b' }, `${A}/records`, '"~0"'],
  ])('%s: the path, and the pointer to write instead', (_what, query, path, fix) => {
    const c = withAccess({ ...query, ...(_what === 'expect' ? { records: '/data' } : {}) });
    expectOnly(c, path, 'JSON pointer', fix);
  });

  it.each([
    ['value', { value: 'access_token' }, '"/access_token"'],
    ['expires_in', { value: '/t', expires_in: 'expires_in' }, '"/expires_in"'],
    ['expires_at', { value: '/t', expires_at: 'data.exp' }, '"/data/exp"'],
  ])('token %s', (field, fields, fix) => {
    expectOnly(withTokens({ session: { request: LOGIN, ...fields } }), `/connections/0/tokens/session/${field}`, 'JSON pointer', fix);
  });
});

describe('graphql', () => {
  it('body and graphql both: at graphql, remove one', () => {
    expectOnly(withAccess({ verb: 'POST', body: '{{}}', graphql: { query: 'q' }, records: '/d' }), `${A}/graphql`, 'either body or graphql', 'remove one');
  });

  it('graphql with verb GET: at verb, set it to POST', () => {
    expectOnly(conn({ delete: [q({ verb: 'GET', graphql: { query: 'mutation { d }' } })] }), '/connections/0/queries/delete/0/verb', 'set verb to "POST"');
  });

  it('a GraphQL variable template that does not parse is reported at the variable', () => {
    expectOnly(conn({ delete: [q({ verb: 'POST', graphql: { query: 'mutation { d }', variables: { e: '{email' } } })] }), '/connections/0/queries/delete/0/graphql/variables/e');
  });
});

describe('records and paginate only where records are read', () => {
  it.each([
    ['delete', '/connections/0/queries/delete/0'],
    ['optout', '/connections/0/queries/optout/0'],
  ])('records on %s', (type, path) => {
    expectOnly(conn({ [type]: [q({ records: '/data' })] }), `${path}/records`, 'access and identifiers queries only', 'remove it');
  });

  it('paginate on a test query', () => {
    expectOnly(conn({ access: [q()], test: [q({ url: 'https://api.example.com/h?p={page}', paginate: { style: 'page' } })] }), '/connections/0/queries/test/0/paginate', 'access and identifiers queries only', 'remove it');
  });

  it.each(['records', 'paginate'])('%s on a token request', (field) => {
    const request = { ...LOGIN, url: 'https://auth.example.com/t?p={page}', [field]: field === 'records' ? '/data' : { style: 'page' } };
    expectOnly(withTokens({ session: { request, value: '/t' } }), `/connections/0/tokens/session/request/${field}`, 'a token request', 'remove it');
  });
});

describe('paginate fields', () => {
  it.each([
    ['cursor', 'size', { cursor: '/n', size: 10 }, 'https://x.example/?c={cursor}'],
    ['link', 'total', { total: '/t' }, 'https://x.example/'],
    ['link', 'cursor', { cursor: '/n' }, 'https://x.example/'],
    ['offset', 'start', { start: 2 }, 'https://x.example/?o={offset}'],
    ['page', 'cursor', { cursor: '/n' }, 'https://x.example/?p={page}'],
  ])('style %s with %s: at the field, remove it', (style, field, fields, url) => {
    expectOnly(withAccess({ url, records: '/data', paginate: { style, ...fields } }), `${A}/paginate/${field}`, 'does not apply', `"${style}"`, 'remove it');
  });

  it('cursor style without cursor: at paginate/cursor, with an example', () => {
    expectOnly(withAccess({ url: 'https://x.example/?c={cursor}', records: '/data', paginate: { style: 'cursor' } }), `${A}/paginate/cursor`, 'needs cursor', 'e.g.');
  });

  it.each([
    ['page', 'page'],
    ['offset', 'offset'],
    ['cursor', 'cursor'],
  ])('style %s whose templates never use {%s}: at paginate, add it', (style, variable) => {
    const extra = style === 'cursor' ? { cursor: '/n' } : {};
    expectOnly(withAccess({ url: 'https://x.example/users?email={email}&page_size={page_size}', records: '/data', paginate: { style, ...extra } }), `${A}/paginate`, `add {${variable}}`);
  });

  it('an unknown style is a schema problem at paginate/style listing the styles', () => {
    const found = problems(withAccess({ paginate: { style: 'pages' } }));
    expect(found.map((p) => p.path)).toContain(`${A}/paginate/style`);
    expect(found.find((p) => p.path === `${A}/paginate/style`)!.message).toContain('"cursor"');
  });
});

describe('pointers inside records', () => {
  it.each([
    ['expect', { expect: { '/data/0/status': 'ok' } }, `${A}/expect/~1data~10~1status`],
    ['expect at the records pointer itself', { expect: { '/data': [] } }, `${A}/expect/~1data`],
    ['paginate.total', { url: 'https://x.example/?p={page}', paginate: { style: 'page', total: '/data/count' } }, `${A}/paginate/total`],
    ['paginate.cursor', { url: 'https://x.example/?c={cursor}', paginate: { style: 'cursor', cursor: '/data/next' } }, `${A}/paginate/cursor`],
  ])('%s', (_what, fields, path) => {
    expectOnly(withAccess({ records: '/data', ...fields }), path, 'inside records', 'point it outside the records');
  });

  it('records "" (the whole body) leaves no room for expect', () => {
    expectOnly(withAccess({ records: '', expect: { '/status': 'ok' } }), `${A}/expect/~1status`, 'inside records');
  });

  it('identifiers queries are checked the same way', () => {
    expectOnly(conn({ identifiers: { user_id: [q({ records: '/users', expect: { '/users/0': {} } })] } }), '/connections/0/queries/identifiers/user_id/0/expect/~1users~10', 'inside records');
  });
});

describe('reading members needs records', () => {
  it.each([
    ['expect', { expect: { '/status': 'ok' } }],
    ['graphql', { verb: 'POST', graphql: { query: 'q' } }],
    ['paginate.total', { url: 'https://x.example/?p={page}', paginate: { style: 'page', total: '/total' } }],
    ['paginate.cursor', { url: 'https://x.example/?c={cursor}', paginate: { style: 'cursor', cursor: '/next' } }],
  ])('%s on an access query without records: at records, add it', (what, fields) => {
    expectOnly(withAccess(fields), `${A}/records`, what, 'add records');
  });

  it('on an identifiers query too, naming everything at once', () => {
    expectOnly(
      conn({ identifiers: { user_id: [q({ verb: 'POST', graphql: { query: 'q', variables: { c: '{cursor}' } }, expect: { '/ok': true }, paginate: { style: 'cursor', cursor: '/next' } })] } }),
      '/connections/0/queries/identifiers/user_id/0/records',
      'graphql, expect, paginate.cursor read',
      'add records',
    );
  });

  it('a delete query may use expect and graphql without records', () => {
    expect(problems(conn({ delete: [q({ verb: 'POST', graphql: { query: 'mutation { d }' }, expect: { '/data/d': true } })] }))).toEqual([]);
  });
});

describe('tokens', () => {
  it('two lifetimes on one token: at the token, keep one', () => {
    expectOnly(withTokens({ session: { request: LOGIN, value: '/t', expires_in: '/e', ttl_seconds: 60 } }), '/connections/0/tokens/session', 'expires_in and ttl_seconds', 'keep only one');
    expectOnly(withTokens({ session: { request: LOGIN, value: '/t', expires_in: '/e', expires_at: '/a', ttl_seconds: 60 } }), '/connections/0/tokens/session', 'expires_in and expires_at and ttl_seconds', 'keep only one');
  });

  it.each(['page', 'offset', 'page_size', 'cursor'])('token name %s is reserved: at the token, rename it', (name) => {
    expectOnly(withTokens({ [name]: { request: LOGIN, value: '/t' } }, { access: [q()] }), `/connections/0/tokens/${name}`, 'reserved for pagination', 'rename the token');
  });

  it('a token named like an identifier: at the token, rename it', () => {
    const c = conn({ access: [q()], identifiers: { user_id: [q()] } }, { tokens: { user_id: { request: LOGIN, value: '/t' } } });
    expectOnly(c, '/connections/0/tokens/user_id', 'identifier name', 'rename the token');
  });

  it('a token depending on itself (a → a) is reported once', () => {
    const c = withTokens({ a: { request: { ...LOGIN, headers: { X: '{a}' } }, value: '/t' } }, { access: [q({ headers: { Authorization: '{a}' } })] });
    expectOnly(c, '/connections/0/tokens/a/request', 'cycle (a → a)', 'break the cycle');
  });

  it('a → b → a is reported once, not once per token', () => {
    const c = withTokens(
      { a: { request: { ...LOGIN, headers: { X: '{b}' } }, value: '/t' }, b: { request: { ...LOGIN, body: 'x={a}' }, value: '/t' } },
      { access: [q({ headers: { Authorization: '{a}' } })] },
    );
    const found = problems(c);
    expect(found).toHaveLength(1);
    expect(found[0]!.path).toMatch(/^\/connections\/0\/tokens\/(a|b)\/request$/);
    expect(found[0]!.message).toMatch(/cycle \((a → b → a|b → a → b)\)/);
    expect(found[0]!.message).toContain('break the cycle');
  });

  it('a token leading into a cycle is not itself reported; separate cycles each once', () => {
    const c = withTokens(
      {
        a: { request: { ...LOGIN, headers: { X: '{b}' } }, value: '/t' },
        b: { request: { ...LOGIN, headers: { X: '{c}' } }, value: '/t' },
        c: { request: { ...LOGIN, headers: { X: '{b}' } }, value: '/t' },
        d: { request: { url: LOGIN.url, verb: 'POST', verify_ssl: 'true', graphql: { query: 'q', variables: { v: '{d}' } } }, value: '/t' },
      },
      { access: [q({ headers: { Authorization: '{a}' } })] },
    );
    const found = problems(c);
    expect(found.map((p) => p.message.match(/cycle \(([^)]*)\)/)?.[1]).sort()).toEqual(['b → c → b', 'd → d']);
  });
});

describe('every problem at once', () => {
  it('lists each problem of the new fields, sorted by path, in one CONFIG_INVALID', () => {
    const c = conn(
      {
        access: [q({ records: 'data', expect: { '/data/x': 1 }, paginate: { style: 'cursor', size: 3 } })],
        delete: [q({ verb: 'GET', graphql: { query: 'm' }, body: 'x', records: '/r' })],
      },
      { tokens: { page: { request: LOGIN, value: 't', ttl_seconds: 1, expires_at: '/e' }, loop: { request: { ...LOGIN, body: '{loop}' }, value: '/t' } } },
    );
    let error: unknown;
    try {
      validateConfig(wrap(c));
    } catch (err) {
      error = err;
    }
    expect(isAgentError(error, 'CONFIG_INVALID')).toBe(true);
    const paths = (error as { problems: Array<{ path: string }> }).problems.map((p) => p.path);
    expect(paths).toEqual([
      `${A}/paginate`, // no {cursor} in the templates
      `${A}/paginate/cursor`, // cursor style without cursor
      `${A}/paginate/size`, // size does not apply to cursor
      `${A}/records`, // not a pointer
      '/connections/0/queries/delete/0/graphql', // body and graphql
      '/connections/0/queries/delete/0/records', // records on delete
      '/connections/0/queries/delete/0/verb', // graphql needs POST
      '/connections/0/tokens/loop/request', // a → a
      '/connections/0/tokens/page', // two lifetimes
      '/connections/0/tokens/page', // reserved name
      '/connections/0/tokens/page/value', // not a pointer
    ]);
    expect((error as Error).message).toContain('11 problems');
  });
});

describe('DataGrail configs are unchanged', () => {
  it('the seed connection validates to the same object as before the new fields existed', () => {
    const config = validateConfig(wrap(seed()));
    const basic = { Authorization: 'Basic {credentials}' };
    const json = { ...basic, 'Content-Type': 'application/json' };
    expect(config.connections).toEqual([
      {
        name: 'User Service',
        uuid: '44d9e703-b8cf-40a8-a138-3cc110319b0d',
        capabilities: ['privacy/access', 'privacy/delete', 'privacy/optout', 'privacy/identifiers'],
        mode: 'live',
        connector_type: 'APIProxy',
        queries: {
          test: [{ url: 'https://api.acme.com/v0/health-check', headers: basic, verb: 'GET', verify_ssl: 'true', valid_response_codes: [200], fail_retry_response_codes: [] }],
          identifiers: {
            primary_phone_number: [
              { url: 'https://api.acme.com/v0/identifiers/get-phone?email={email}', headers: json, verb: 'GET', verify_ssl: 'true', valid_response_codes: [200], fail_retry_response_codes: [] },
            ],
          },
          access: [{ url: 'https://api.acme.com/v0/users?email={email}', headers: json, verb: 'GET', verify_ssl: 'true', valid_response_codes: [200], fail_retry_response_codes: [] }],
          delete: [
            { url: 'https://api.acme.com/v0/users', headers: json, body: '{{"email": "{email}"}}', verb: 'DELETE', verify_ssl: 'true', valid_response_codes: [200, 404], fail_retry_response_codes: [] },
          ],
          optout: [
            { url: 'https://api.acme.com/v0/users/optout', headers: json, body: '{{"email": "{email}"}}', verb: 'PUT', verify_ssl: 'true', valid_response_codes: [200, 201, 404], fail_retry_response_codes: [] },
          ],
        },
        credentials_location: 'arn:aws:secretsmanager:Region:AccountId:secret:datagrail-apiproxy',
      },
    ]);
    // Not even as undefined members: the new fields stay absent.
    const c = config.connections[0] as APIProxyConnection;
    expect('tokens' in c).toBe(false);
    for (const query of [...c.queries.test!, ...c.queries.access!, ...c.queries.delete!, ...c.queries.optout!, ...c.queries.identifiers!.primary_phone_number!]) {
      for (const field of ['graphql', 'records', 'expect', 'paginate']) expect(field in query).toBe(false);
    }
  });

  it("the schema's paginate defaults equal DEFAULT_PAGINATE, and normalisation applies them per style", () => {
    const paginate = (readSchemas()['apiproxy-query.schema.json'] as { properties: { paginate: { properties: Record<string, { default?: unknown }> } } }).properties.paginate;
    const defaults = Object.fromEntries(Object.entries(paginate.properties).filter(([, p]) => p.default !== undefined).map(([k, p]) => [k, p.default]));
    expect(defaults).toEqual({ ...DEFAULT_PAGINATE });
    const config = validateConfig(
      wrap(
        conn({
          access: [
            q({ url: 'https://x.example/?p={page}', paginate: { style: 'page' } }),
            q({ url: 'https://x.example/?o={offset}', paginate: { style: 'offset' } }),
            q({ url: 'https://x.example/?c={cursor}', records: '/d', paginate: { style: 'cursor', cursor: '/n' } }),
            q({ url: 'https://x.example/', paginate: { style: 'link', max_pages: 5 } }),
          ],
        }),
      ),
    );
    expect((config.connections[0] as APIProxyConnection).queries.access!.map((a) => a.paginate)).toEqual([
      { style: 'page', start: DEFAULT_PAGINATE.start, size: DEFAULT_PAGINATE.size, max_pages: DEFAULT_PAGINATE.max_pages },
      { style: 'offset', size: DEFAULT_PAGINATE.size, max_pages: DEFAULT_PAGINATE.max_pages },
      { style: 'cursor', cursor: '/n', max_pages: DEFAULT_PAGINATE.max_pages },
      { style: 'link', max_pages: 5 },
    ]);
  });
});
