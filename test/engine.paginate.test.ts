import { describe, it, expect } from '@jest/globals';
import type http from 'node:http';
import { startTarget, json, type Target } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';
import { memorySink, to, pathOf, param, bearer, later } from './helpers/real-api.js';

const fx = useFixtures();

const ids = (from: number, to_: number) => Array.from({ length: to_ - from + 1 }, (_, i) => ({ id: from + i }));
/** The ids in the reports, in report order, and the report numbers. */
const reported = (puts: ReturnType<typeof memorySink>['puts']) => ({ n: puts.map((p) => p.n), ids: puts.map((p) => Number(/^id,(\d+)/.exec(p.csv)?.[1])) });
const access = (email = 'peter@initech.com') => ({ type: 'access' as const, identifiers: { email } });
const q = (req: http.IncomingMessage, name: string) => param({ url: req.url }, name);

/** Serve `records` page by page: `?page=` (from `start`) or `?offset=`, `per_page` records each; `wrap` builds the body. */
function pagedServer(records: ReadonlyArray<Record<string, unknown>>, opts: { start?: number; wrap?: (page: unknown[]) => unknown } = {}) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const size = Number(q(req, 'per_page'));
    const offset = q(req, 'offset') !== null ? Number(q(req, 'offset')) : (Number(q(req, 'page')) - (opts.start ?? 1)) * size;
    const page = records.slice(offset, offset + size);
    json(res, 200, opts.wrap ? opts.wrap(page) : page);
  };
}

async function runAccess(target: Target, queries: unknown[], extra: { top?: Record<string, unknown>; secrets?: Record<string, Record<string, unknown>> } = {}) {
  fx.agent = makeTestAgent([connection({ access: queries })], extra);
  const { sink, puts } = memorySink();
  const result = await fx.agent.engine.run(access(), { sink });
  return { result, puts, urls: target.received.map((r) => r.url) };
}

describe('page style', () => {
  it('fills {page} and {page_size}, and stops after a page with fewer records than size', async () => {
    fx.target = await startTarget(pagedServer(ids(1, 5)));
    const { result, puts, urls } = await runAccess(fx.target, [
      query(`${fx.target.url}/users?email={email}&page={page}&per_page={page_size}`, { paginate: { style: 'page', size: 2 } }),
    ]);
    expect(result.status).toBe('succeeded');
    expect(urls).toEqual([1, 2, 3].map((p) => `/users?email=peter%40initech.com&page=${p}&per_page=2`));
    expect(reported(puts)).toEqual({ n: [1, 2, 3, 4, 5], ids: [1, 2, 3, 4, 5] });
    expect(result.connections[0]!.reports).toHaveLength(5);
  });

  it('stops after an empty page when the records divide evenly', async () => {
    fx.target = await startTarget(pagedServer(ids(1, 4)));
    const { result, puts, urls } = await runAccess(fx.target, [query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { paginate: { style: 'page', size: 2 } })]);
    expect(result.status).toBe('succeeded');
    expect(urls.map((u) => param({ url: u }, 'page'))).toEqual(['1', '2', '3']);
    expect(reported(puts).ids).toEqual([1, 2, 3, 4]);
  });

  it('starts at start (0 here)', async () => {
    fx.target = await startTarget(pagedServer(ids(1, 3), { start: 0 }));
    const { result, puts, urls } = await runAccess(fx.target, [
      query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { paginate: { style: 'page', start: 0, size: 2 } }),
    ]);
    expect(result.status).toBe('succeeded');
    expect(urls.map((u) => param({ url: u }, 'page'))).toEqual(['0', '1']);
    expect(reported(puts).ids).toEqual([1, 2, 3]);
  });

  it('defaults: start 1, size 100', async () => {
    fx.target = await startTarget(pagedServer(ids(1, 3)));
    const { result, urls } = await runAccess(fx.target, [query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { paginate: { style: 'page' } })]);
    expect(result.status).toBe('succeeded');
    expect(urls).toEqual(['/u?page=1&per_page=100']);
  });

  it.each([
    ['a number', 4],
    ['a numeric string', '4'],
  ])('total (%s): stops once that many records are read, without asking for an empty page', async (_what, total) => {
    fx.target = await startTarget(pagedServer(ids(1, 4), { wrap: (data) => ({ data, total }) }));
    const { result, puts, urls } = await runAccess(fx.target, [
      query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { records: '/data', paginate: { style: 'page', size: 2, total: '/total' } }),
    ]);
    expect(result.status).toBe('succeeded');
    expect(urls.map((u) => param({ url: u }, 'page'))).toEqual(['1', '2']);
    expect(reported(puts).ids).toEqual([1, 2, 3, 4]);
  });

  it('total absent from the response: the short-page rule still ends the walk', async () => {
    fx.target = await startTarget(pagedServer(ids(1, 3), { wrap: (data) => ({ data }) }));
    const { result, urls } = await runAccess(fx.target, [
      query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { records: '/data', paginate: { style: 'page', size: 2, total: '/total' } }),
    ]);
    expect(result.status).toBe('succeeded');
    expect(urls).toHaveLength(2);
  });

  it('a valid no-data status (404 listed in valid_response_codes) ends the walk', async () => {
    fx.target = await startTarget((req, res) => (q(req, 'page') === '1' ? json(res, 200, ids(1, 2)) : json(res, 404, { error: 'no such page' })));
    const { result, puts, urls } = await runAccess(fx.target, [
      query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { valid_response_codes: [200, 404], paginate: { style: 'page', size: 2 } }),
    ]);
    expect(result.status).toBe('succeeded');
    expect(urls).toHaveLength(2);
    expect(reported(puts).ids).toEqual([1, 2]);
  });

  it('page variables can go into a JSON body', async () => {
    fx.target = await startTarget((req, res, { body }) => {
      const { page } = JSON.parse(body) as { page: string };
      json(res, 200, page === '1' ? ids(1, 2) : ids(3, 3));
    });
    const { result, puts } = await runAccess(fx.target, [
      query(`${fx.target.url}/search`, { verb: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{{"email": "{email}", "page": "{page}", "size": "{page_size}"}}', paginate: { style: 'page', size: 2 } }),
    ]);
    expect(result.status).toBe('succeeded');
    expect(fx.target.received.map((r) => JSON.parse(r.body))).toEqual([
      { email: 'peter@initech.com', page: '1', size: '2' },
      { email: 'peter@initech.com', page: '2', size: '2' },
    ]);
    expect(reported(puts).ids).toEqual([1, 2, 3]);
  });
});

describe('offset style', () => {
  it('fills {offset} and {page_size}, advancing by the records read; stops on a short page', async () => {
    fx.target = await startTarget(pagedServer(ids(1, 5)));
    const { result, puts, urls } = await runAccess(fx.target, [query(`${fx.target.url}/u?offset={offset}&per_page={page_size}`, { paginate: { style: 'offset', size: 2 } })]);
    expect(result.status).toBe('succeeded');
    expect(urls).toEqual(['/u?offset=0&per_page=2', '/u?offset=2&per_page=2', '/u?offset=4&per_page=2']);
    expect(reported(puts)).toEqual({ n: [1, 2, 3, 4, 5], ids: [1, 2, 3, 4, 5] });
  });

  it('with total: stops once total records are read', async () => {
    fx.target = await startTarget(pagedServer(ids(1, 6), { wrap: (data) => ({ results: data, meta: { count: 6 } }) }));
    const { result, urls } = await runAccess(fx.target, [
      query(`${fx.target.url}/u?offset={offset}&per_page={page_size}`, { records: '/results', paginate: { style: 'offset', size: 3, total: '/meta/count' } }),
    ]);
    expect(result.status).toBe('succeeded');
    expect(urls).toEqual(['/u?offset=0&per_page=3', '/u?offset=3&per_page=3']);
  });
});

describe('cursor style', () => {
  const PAGES: Record<string, { data: unknown[]; next: unknown }> = {
    '': { data: ids(1, 2), next: 'c2' },
    c2: { data: ids(3, 4), next: 'c3' },
  };
  it.each([
    ['absent', undefined],
    ['null', null],
    ['empty', ''],
    ['the same as before', 'c3'],
  ])('fills {cursor} ("" first) from the pointer, and stops when it is %s', async (_what, last) => {
    fx.target = await startTarget((req, res) => {
      const cursor = q(req, 'cursor') ?? 'MISSING';
      const page = PAGES[cursor] ?? { data: ids(5, 5), next: last };
      json(res, 200, { data: page.data, meta: page.next === undefined ? {} : { next: page.next } });
    });
    const { result, puts, urls } = await runAccess(fx.target, [
      query(`${fx.target.url}/u?email={email}&cursor={cursor}`, { records: '/data', paginate: { style: 'cursor', cursor: '/meta/next' } }),
    ]);
    expect(result.status).toBe('succeeded');
    expect(urls.map((u) => param({ url: u }, 'cursor'))).toEqual(['', 'c2', 'c3']);
    expect(reported(puts)).toEqual({ n: [1, 2, 3, 4, 5], ids: [1, 2, 3, 4, 5] });
  });

  it('a numeric cursor is used as text', async () => {
    fx.target = await startTarget((req, res) => {
      const c = q(req, 'after');
      json(res, 200, c === '' ? { items: ids(1, 1), next: 42 } : { items: ids(2, 2), next: null });
    });
    const { result, urls } = await runAccess(fx.target, [query(`${fx.target.url}/u?after={cursor}`, { records: '/items', paginate: { style: 'cursor', cursor: '/next' } })]);
    expect(result.status).toBe('succeeded');
    expect(urls).toEqual(['/u?after=', '/u?after=42']);
  });

  it('a cursor holding an object fails with RESPONSE_MALFORMED naming the pointer, not the value', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { items: ids(1, 1), next: { token: 'cursor-secret-1' } }));
    const { result } = await runAccess(fx.target, [query(`${fx.target.url}/u?after={cursor}`, { records: '/items', paginate: { style: 'cursor', cursor: '/next' } })]);
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('RESPONSE_MALFORMED');
    expect(error.message).toContain('"/next"');
    expect(error.message).toContain('an object');
    expect(error.message).not.toContain('cursor-secret-1');
  });

  it('a cursor value is percent-encoded in the URL', async () => {
    const next = 'a b&c=d/e?f#g+h';
    fx.target = await startTarget((req, res) => json(res, 200, q(req, 'c') === '' ? { d: ids(1, 1), n: next } : { d: [], n: null }));
    const { result } = await runAccess(fx.target, [query(`${fx.target.url}/u?c={cursor}`, { records: '/d', paginate: { style: 'cursor', cursor: '/n' } })]);
    expect(result.status).toBe('succeeded');
    expect(param(fx.target.received[1]!, 'c')).toBe(next);
    expect(fx.target.received[1]!.url).toBe(`/u?c=${encodeURIComponent(next)}`);
  });
});

/** The two spellings of rel (RFC 8288): quoted, as GitHub and Shopify send it, and bare. */
const RELS: Array<[string, string]> = [
  ['quoted rel="next"', 'rel="next"'],
  ['bare rel=next', 'rel=next'],
];

describe.each(RELS)('link style (%s)', (_what, rel) => {
  it('follows absolute and relative next links, and stops when there is none', async () => {
    fx.target = await startTarget((req, res) => {
      const page = Number(q(req, 'page') ?? '1');
      const links: Record<number, string> = {
        1: `<${fx.target!.url}/users?page=2&per_page=2>; ${rel}, <${fx.target!.url}/users?page=9>; rel="last"`,
        2: `</users?page=3&per_page=2>; ${rel}`, // absolute path
        3: `<?page=4&per_page=2>; ${rel}`, // relative to the request URL
      };
      json(res, 200, ids(page * 2 - 1, page * 2), links[page] ? { link: links[page] } : {});
    });
    const { result, puts, urls } = await runAccess(fx.target, [query(`${fx.target.url}/users?email={email}`, { paginate: { style: 'link' } })]);
    expect(result.status).toBe('succeeded');
    expect(urls).toEqual(['/users?email=peter%40initech.com', '/users?page=2&per_page=2', '/users?page=3&per_page=2', '/users?page=4&per_page=2']);
    expect(reported(puts).ids).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('the followed requests keep the query headers (credentials)', async () => {
    fx.target = await startTarget((req, res) => json(res, 200, ids(1, 1), req.url === '/a' ? { link: `</b>; ${rel}` } : {}));
    const { result } = await runAccess(fx.target, [query(`${fx.target.url}/a`, { paginate: { style: 'link' } })]);
    expect(result.status).toBe('succeeded');
    expect(fx.target.received.map((r) => [r.url, r.headers.authorization])).toEqual([
      ['/a', 'Basic dXNlcjpwYXNz'],
      ['/b', 'Basic dXNlcjpwYXNz'],
    ]);
  });

  it('a next link to another origin fails the query with RESPONSE_UNEXPECTED, and nothing is sent there', async () => {
    const other = await startTarget((_req, res) => json(res, 200, ids(9, 9)));
    try {
      fx.target = await startTarget((_req, res) => json(res, 200, ids(1, 1), { link: `<${other.url}/steal?page=2>; ${rel}` }));
      const { result } = await runAccess(fx.target, [query(`${fx.target.url}/users?email={email}`, { paginate: { style: 'link' } })]);
      const error = result.connections[0]!.error;
      expect(error?.code).toBe('RESPONSE_UNEXPECTED');
      expect(error?.message).toMatch(/another origin/);
      expect(fx.target.received).toHaveLength(1);
      expect(other.received).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  it('a next link to the same host with another scheme is another origin', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, ids(1, 1), { link: `<${fx.target!.url.replace('http:', 'https:')}/p2>; ${rel}` }));
    const { result } = await runAccess(fx.target, [query(`${fx.target.url}/users`, { paginate: { style: 'link' } })]);
    expect(result.connections[0]!.error?.code).toBe('RESPONSE_UNEXPECTED');
    expect(fx.target.received).toHaveLength(1);
  });

  it('max_pages applies', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, ids(1, 1), { link: `</l?n=${Math.random()}>; ${rel}` }));
    const { result } = await runAccess(fx.target, [query(`${fx.target.url}/l`, { paginate: { style: 'link', max_pages: 4 } })]);
    expect(result.connections[0]!.error?.code).toBe('PAGINATION_LIMIT');
    expect(fx.target.received).toHaveLength(4);
  });
});

describe('max_pages', () => {
  it('needing more than max_pages fails with PAGINATION_LIMIT after exactly max_pages requests', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, ids(1, 2)));
    const { result, urls } = await runAccess(fx.target, [query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { paginate: { style: 'page', size: 2, max_pages: 3 } })]);
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('PAGINATION_LIMIT');
    expect(error.message).toContain('max_pages (3)');
    expect(urls).toHaveLength(3);
  });

  it('the default max_pages is 1000', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, ids(1, 1)));
    const { result, urls } = await runAccess(fx.target, [query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { paginate: { style: 'page', size: 1 } })]);
    expect(result.connections[0]!.error?.code).toBe('PAGINATION_LIMIT');
    expect(urls).toHaveLength(1000);
    expect(urls.at(-1)).toBe('/u?page=1000&per_page=1');
  }, 60_000);

  it('exactly max_pages pages is fine', async () => {
    fx.target = await startTarget(pagedServer(ids(1, 5)));
    const { result, urls } = await runAccess(fx.target, [query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { paginate: { style: 'page', size: 2, max_pages: 3 } })]);
    expect(result.status).toBe('succeeded');
    expect(urls).toHaveLength(3);
  });

  it('applies to the cursor style too', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { d: ids(1, 1), next: `c${Math.random()}` }));
    const { result } = await runAccess(fx.target, [query(`${fx.target.url}/c?c={cursor}`, { records: '/d', paginate: { style: 'cursor', cursor: '/next', max_pages: 2 } })]);
    expect(result.connections[0]!.error?.code).toBe('PAGINATION_LIMIT');
    expect(fx.target.received).toHaveLength(2);
  });
});

describe('report numbering', () => {
  it('continues across pages and across queries', async () => {
    fx.target = await startTarget((req, res) => {
      if (pathOf({ url: req.url }) === '/paged') return pagedServer(ids(1, 3))(req, res);
      if (pathOf({ url: req.url }) === '/plain') return json(res, 200, ids(4, 4));
      json(res, 200, q(req, 'c') === '' ? { d: ids(5, 6), n: 'x' } : { d: ids(7, 7), n: null });
    });
    const { result, puts } = await runAccess(fx.target, [
      query(`${fx.target.url}/paged?page={page}&per_page={page_size}`, { paginate: { style: 'page', size: 2 } }),
      query(`${fx.target.url}/plain`),
      query(`${fx.target.url}/cursored?c={cursor}`, { records: '/d', paginate: { style: 'cursor', cursor: '/n' } }),
    ]);
    expect(result.status).toBe('succeeded');
    expect(reported(puts)).toEqual({ n: [1, 2, 3, 4, 5, 6, 7], ids: [1, 2, 3, 4, 5, 6, 7] });
    expect(result.connections[0]!.reports).toEqual(puts.map((p) => `${p.uuid}/report_${p.n}.csv`));
  });
});

describe('identifiers with pagination', () => {
  it('collects the identifier from every page', async () => {
    fx.target = await startTarget((req, res) => {
      const page = Number(q(req, 'page'));
      const users = page === 1 ? [{ user_id: 'u1' }, { user_id: 'u2' }] : page === 2 ? [{ user_id: 'u3' }, { user_id: 'u1' }] : [{ user_id: 'u4' }];
      json(res, 200, { users });
    });
    const conn = connection({
      identifiers: { user_id: [query(`${fx.target.url}/ids?email={email}&page={page}&size={page_size}`, { records: '/users', paginate: { style: 'page', size: 2 } })] },
    });
    fx.agent = makeTestAgent([conn]);
    const result = await fx.agent.engine.run({ type: 'identifiers', identifiers: { email: 'a@b.co' } });
    expect(result.status).toBe('succeeded');
    expect(result.connections[0]!.identifiers!.user_id!.sort()).toEqual(['u1', 'u2', 'u3', 'u4']);
    expect(fx.target.received).toHaveLength(3);
  });
});

describe('reserved names', () => {
  it.each(['page', 'page_size', 'offset', 'cursor'])('an identifier named %s on a paginated connection: IDENTIFIER_COLLISION, nothing sent', async (name) => {
    fx.target = await startTarget((_req, res) => json(res, 200, []));
    fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/u?page={page}&per_page={page_size}&email={email}`, { paginate: { style: 'page' } })] })]);
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'a@b.co', [name]: '7' } }, { sink: memorySink().sink });
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('IDENTIFIER_COLLISION');
    expect(error.message).toContain(`'${name}'`);
    expect(fx.target.received).toHaveLength(0);
  });

  it('a secret key named cursor on a paginated connection: IDENTIFIER_COLLISION, nothing sent', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { d: [], n: null }));
    fx.agent = makeTestAgent([connection({ access: [query(`${fx.target.url}/u?c={cursor}`, { headers: {}, records: '/d', paginate: { style: 'cursor', cursor: '/n' } })] })], {
      secrets: { default: { cursor: 'from-the-secret' } },
    });
    const result = await fx.agent.engine.run(access(), { sink: memorySink().sink });
    expect(result.connections[0]!.error?.code).toBe('IDENTIFIER_COLLISION');
    expect(result.connections[0]!.error?.message).toContain("'cursor'");
    expect(fx.target.received).toHaveLength(0);
  });
});

describe('tokens and pagination', () => {
  it('a 401 mid-walk logs in again and retries the same page', async () => {
    let logins = 0;
    let refusedOnce = false;
    fx.target = await startTarget((req, res) => {
      if (pathOf({ url: req.url }) === '/login') return json(res, 200, { token: `tok-${++logins}` });
      if (q(req, 'page') === '2' && !refusedOnce) {
        refusedOnce = true;
        return json(res, 401, { error: 'expired' });
      }
      return pagedServer(ids(1, 5))(req, res);
    });
    const conn = connection(
      { access: [query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { headers: { Authorization: 'Bearer {session}' }, paginate: { style: 'page', size: 2 } })] },
      { tokens: { session: { request: { url: `${fx.target.url}/login`, verb: 'POST', verify_ssl: 'true' }, value: '/token' } } },
    );
    fx.agent = makeTestAgent([conn]);
    const { sink, puts } = memorySink();
    const result = await fx.agent.engine.run(access(), { sink });
    expect(result.status).toBe('succeeded');
    expect(fx.target.received.map((r) => (pathOf(r) === '/login' ? 'login' : `page ${param(r, 'page')} ${bearer(r)}`))).toEqual([
      'login',
      'page 1 tok-1',
      'page 2 tok-1',
      'login',
      'page 2 tok-2',
      'page 3 tok-2',
    ]);
    expect(reported(puts)).toEqual({ n: [1, 2, 3, 4, 5], ids: [1, 2, 3, 4, 5] });
  });
});

describe('job_timeout_seconds', () => {
  it('every page counts: slow pages, each well within the timeout, end in JOB_TIMEOUT', async () => {
    fx.target = await startTarget((_req, res) => later(res, 500, () => json(res, 200, ids(1, 2))));
    const started = Date.now();
    const { result } = await runAccess(fx.target, [query(`${fx.target.url}/u?page={page}&per_page={page_size}`, { paginate: { style: 'page', size: 2, max_pages: 1000 } })], {
      top: { job_timeout_seconds: 2 },
    });
    expect(result.connections[0]!.error?.code).toBe('JOB_TIMEOUT');
    expect(result.connections[0]!.error?.message).toContain('job_timeout_seconds (2 s');
    expect(fx.target.received.length).toBeGreaterThanOrEqual(2);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});

describe('dry run', () => {
  it('shows each paginated query at its first page and sends nothing', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, []));
    const u = fx.target.url;
    fx.agent = makeTestAgent([
      connection({
        access: [
          query(`${u}/p?page={page}&n={page_size}`, { paginate: { style: 'page', start: 0, size: 25 } }),
          query(`${u}/o?offset={offset}&n={page_size}`, { paginate: { style: 'offset', size: 10 } }),
          query(`${u}/c?cursor={cursor}`, { records: '/d', paginate: { style: 'cursor', cursor: '/n' } }),
        ],
      }),
    ]);
    const plan = await fx.agent.engine.plan(access());
    expect(plan.map((p) => p.request?.url)).toEqual([`${u}/p?page=0&n=25`, `${u}/o?offset=0&n=10`, `${u}/c?cursor=`]);
    expect(fx.target.received).toHaveLength(0);
  });
});
