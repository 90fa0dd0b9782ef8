import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { listConfigProblems, validateConfig } from '../src/config/validate.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/config/${name}`, import.meta.url), 'utf8'));
const seed = () => fixture('seed-connection.json');
const wrap = (...connections: unknown[]) => ({ ...fixture('minimal.json'), connections });
const problemsOf = (raw: unknown) => listConfigProblems(raw);
const messageAt = (raw: unknown, path: string) => problemsOf(raw).filter((p) => p.path === path).map((p) => p.message);
/** The seed connection with only `capabilities` and `queries` replaced. */
const conn = (capabilities: string[], queries: Record<string, unknown>) => ({ ...seed(), capabilities, queries });
const test = [{ url: 'https://api.example.com/health', verb: 'GET', verify_ssl: 'true' }];
const query = (over: Record<string, unknown> = {}) => ({ url: 'https://api.example.com/x?email={email}', verb: 'GET', verify_ssl: 'true', ...over });

describe('unique names and uuids', () => {
  it('a repeated uuid (any case) names both connections', () => {
    const a = seed();
    const b = { ...seed(), name: 'Other', uuid: a.uuid.toUpperCase() };
    const c = { ...seed(), name: 'Third', uuid: a.uuid };
    const raw = wrap(a, b, c);
    expect(problemsOf(raw)).toEqual([
      { path: '/connections/1/uuid', message: 'connection 1 has the same uuid as connection 0; give each connection its own uuid' },
      { path: '/connections/2/uuid', message: 'connection 2 has the same uuid as connection 0; give each connection its own uuid' },
    ]);
  });

  it('a repeated name names both connections', () => {
    const b = { ...seed(), uuid: '0b7a2d4e-6f1c-4d3b-9a8e-5c2f1e0d9b7a' };
    expect(problemsOf(wrap(seed(), b))).toEqual([
      {
        path: '/connections/1/name',
        message: "connection 1 has the same name 'User Service' as connection 0; give each connection its own name",
      },
    ]);
  });
});

describe('capabilities need their queries', () => {
  it.each([
    ['privacy/access', 'access'],
    ['privacy/delete', 'delete'],
    ['privacy/optout', 'optout'],
  ])('%s without queries.%s, or with an empty list', (capability, type) => {
    for (const queries of [{ test }, { test, [type]: [] }]) {
      expect(problemsOf(wrap(conn([capability], queries)))).toEqual([
        {
          path: `/connections/0/queries/${type}`,
          message: `capability ${capability} needs at least one ${type} query in queries.${type}; add them or remove the capability`,
        },
      ]);
    }
    expect(problemsOf(wrap(conn([capability], { test, [type]: [query()] })))).toEqual([]);
  });

  it('privacy/identifiers needs at least one identifier, each with a query', () => {
    const message =
      'capability privacy/identifiers needs at least one identifier with its queries in queries.identifiers; add them or remove the capability';
    expect(messageAt(wrap(conn(['privacy/identifiers'], { test })), '/connections/0/queries/identifiers')).toEqual([message]);
    expect(messageAt(wrap(conn(['privacy/identifiers'], { test, identifiers: {} })), '/connections/0/queries/identifiers')).toEqual([message]);
    expect(problemsOf(wrap(conn(['privacy/identifiers'], { test, identifiers: { user_id: [] } })))).toEqual([
      {
        path: '/connections/0/queries/identifiers/user_id',
        message: "identifier 'user_id' needs at least one query; add one or remove the identifier",
      },
    ]);
    expect(problemsOf(wrap(conn(['privacy/identifiers'], { test, identifiers: { user_id: [query()] } })))).toEqual([]);
  });

  it('queries without their capability are fine', () => {
    const raw = wrap(conn(['privacy/access'], { test, access: [query()], delete: [query()], optout: [query()], identifiers: { email: [query()] } }));
    expect(problemsOf(raw)).toEqual([]);
  });

  it('an APIProxy connection needs at least one test query', () => {
    const message =
      'an APIProxy connection needs at least one test query (a health check, e.g. GET /health); add one to queries.test';
    expect(problemsOf(wrap(conn(['privacy/access'], { access: [query()] })))).toEqual([
      { path: '/connections/0/queries/test', message },
    ]);
    expect(messageAt(wrap(conn(['privacy/access'], { test: [], access: [query()] })), '/connections/0/queries/test')).toEqual([message]);
  });
});

describe('templates', () => {
  it('report the parser message at the url, header or body that fails', () => {
    const raw = wrap(
      conn(['privacy/access'], {
        test,
        access: [
          query(),
          query({ url: 'https://api.example.com/x?email={email', headers: { Accept: 'x}', Authorization: 'Basic {credentials}' }, body: '{"email": "{email}"}' }),
        ],
      }),
    );
    const problems = problemsOf(raw);
    expect(problems.map((p) => p.path)).toEqual([
      '/connections/0/queries/access/1/body',
      '/connections/0/queries/access/1/headers/Accept',
      '/connections/0/queries/access/1/url',
    ]);
    expect(problems[0].message).toMatch(/column \d+/);
    expect(problems[1].message).toBe("unbalanced '}' at column 2: write '}}' for a literal brace");
    expect(problems[2].message).toMatch(/^unterminated placeholder '\{…' at column 33: close it with '}'/);
  });

  it('are checked in every query type, identifiers included', () => {
    const bad = query({ url: 'https://api.example.com/{}' });
    const raw = wrap(conn(['privacy/access'], { test: [bad], access: [bad], delete: [bad], optout: [bad], identifiers: { email: [query(), bad] } }));
    expect(problemsOf(raw).map((p) => p.path)).toEqual([
      '/connections/0/queries/access/0/url',
      '/connections/0/queries/delete/0/url',
      '/connections/0/queries/identifiers/email/1/url',
      '/connections/0/queries/optout/0/url',
      '/connections/0/queries/test/0/url',
    ]);
  });
});

describe('response codes', () => {
  it('valid and retry codes must not overlap; the overlap is named', () => {
    const raw = wrap(conn(['privacy/access'], { test, access: [query({ valid_response_codes: [200, 404, 503], fail_retry_response_codes: [429, 503, 404] })] }));
    expect(problemsOf(raw)).toEqual([
      {
        path: '/connections/0/queries/access/0/fail_retry_response_codes',
        message:
          'statuses 404, 503 are in both valid_response_codes and fail_retry_response_codes; a status is either a success or retried: remove it from one list',
      },
    ]);
  });

  it('the default valid_response_codes [200] counts', () => {
    const raw = wrap(conn(['privacy/access'], { test, access: [query({ fail_retry_response_codes: [200] })] }));
    expect(messageAt(raw, '/connections/0/queries/access/0/fail_retry_response_codes')[0]).toMatch(
      /^status 200 is in both valid_response_codes \(default \[200\]\) and fail_retry_response_codes/,
    );
  });
});

describe('identifier names', () => {
  it.each(['user_id', 'email', 'primary_phone_number', 'address2'])('%s is snake_case', (name) => {
    expect(problemsOf(wrap(conn(['privacy/identifiers'], { test, identifiers: { [name]: [query()] } })))).toEqual([]);
  });
  it.each(['UserId', 'user-id', 'user id', '_user', 'user__id', '2fa', 'Email'])('%s is rejected', (name) => {
    const raw = wrap(conn(['privacy/identifiers'], { test, identifiers: { [name]: [query()] } }));
    expect(problemsOf(raw)).toEqual([
      {
        path: `/connections/0/queries/identifiers/${name}`,
        message: `identifier name '${name}' is not snake_case; use the DataGrail identifier category in snake_case, e.g. user_id or primary_phone_number`,
      },
    ]);
  });
});

describe('urls', () => {
  const urlProblems = (url: string) => problemsOf(wrap(conn(['privacy/access'], { test, access: [query({ url })] })));
  it.each([
    'https://api.example.com/v0/users?email={email}',
    'http://10.0.0.5:8080/x',
    'https://{tenant}.example.com/x',
    'https://api.example.com:{port}/x',
    'https://{host}/x/{{literal}}',
    'HTTPS://API.EXAMPLE.COM/',
  ])('%s is accepted', (url) => {
    expect(urlProblems(url)).toEqual([]);
  });
  it.each(['/v0/users', 'api.example.com/users', 'ftp://files.example.com/x', '{base_url}/users', 'file:///etc/passwd', 'https://'])(
    '%s is rejected',
    (url) => {
      expect(urlProblems(url)).toEqual([
        {
          path: '/connections/0/queries/access/0/url',
          message:
            'url must be an absolute http:// or https:// URL (placeholders may fill parts of it), e.g. "https://api.example.com/v0/users?email={email}"',
        },
      ]);
    },
  );
});

describe('other rules', () => {
  it('header names must be HTTP tokens and values hold no line breaks', () => {
    const raw = wrap(conn(['privacy/access'], { test, access: [query({ headers: { 'X Bad': 'a', 'X-Split': 'a\r\nX-Injected: 1' } })] }));
    expect(problemsOf(raw)).toEqual([
      {
        path: '/connections/0/queries/access/0/headers/X Bad',
        message: "header name 'X Bad' is not a valid HTTP header name; use letters, digits and '-' only",
      },
      { path: '/connections/0/queries/access/0/headers/X-Split', message: "header 'X-Split' contains a line break or NUL; remove it" },
    ]);
  });

  it('credentials_arn and credentials_location must agree when both are given', () => {
    const same = { ...seed(), credentials_arn: seed().credentials_location };
    expect(problemsOf(wrap(same))).toEqual([]);
    const differ = { ...seed(), credentials_arn: 'arn:aws:secretsmanager:us-east-1:1:secret:other' };
    expect(problemsOf(wrap(differ))).toEqual([
      {
        path: '/connections/0/credentials_arn',
        message:
          'credentials_arn and credentials_location are both given and differ; they are two names for one field: keep only credentials_location',
      },
    ]);
  });

  it('retry_min_delay_ms must not exceed retry_max_delay_ms, defaults included', () => {
    expect(problemsOf({ ...wrap(seed()), agent: { retry_min_delay_ms: 5000, retry_max_delay_ms: 4000 } }).map((p) => p.path)).toEqual([
      '/agent/retry_max_delay_ms',
    ]);
    expect(problemsOf({ ...wrap(seed()), agent: { retry_min_delay_ms: 60000 } }).map((p) => p.path)).toEqual(['/agent/retry_min_delay_ms']);
    expect(problemsOf({ ...wrap(seed()), agent: { retry_max_delay_ms: 500 } }).map((p) => p.path)).toEqual(['/agent/retry_max_delay_ms']);
    expect(problemsOf({ ...wrap(seed()), agent: { retry_min_delay_ms: 0, retry_max_delay_ms: 0 } })).toEqual([]);
  });
});

describe('problem messages never carry values', () => {
  const token = 'sk_live_51HxQ9pLm';
  it('a token in a header, url, body or location does not appear in any message', () => {
    const c = conn(['privacy/access', 'privacy/identifiers'], {
      test: [query({ url: `ftp://api.example.com/?key=${token}`, headers: { Authorization: `Bearer {${token}`, Other: `x${token}}` } })],
      access: [query({ url: `https://api.example.com/?key={${token} x}`, body: `{"token": "{${token}"}`, valid_response_codes: [200], fail_retry_response_codes: [200] })],
      identifiers: { user_id: [query({ headers: { 'X-Key': `${token}\n`, 'X-Two': `{{${token}}` } })] },
    });
    const raw = { ...wrap({ ...c, credentials_arn: token, uuid: token }, { ...c, credentials_location: token, name: 'Other' }), redis_url: token, callback_url: token };
    const problems = problemsOf(raw);
    expect(problems.length).toBeGreaterThan(10);
    for (const p of problems) {
      expect(p.message).not.toContain('sk_live');
      expect(p.message).not.toContain('51HxQ9pLm');
    }
    expect(() => validateConfig(raw)).toThrow(expect.objectContaining({ message: expect.not.stringContaining('sk_live') }));
  });
});
