import { describe, it, expect } from '@jest/globals';
import type http from 'node:http';
import { SignJWT } from 'jose';
import { startTarget, json } from './helpers/target.js';
import { makeTestAgent, connection, query, useFixtures } from './helpers/agent.js';
import { AgentError, ErrorCodes } from '../src/errors.js';
import { memorySink, waitFor, to, pathOf, param, bearer, percent, later, leaks, sleep } from './helpers/real-api.js';

const fx = useFixtures();

const API_KEY = 'k-7f3a9c21';
const SECRETS = { default: { api_key: API_KEY } };

/** A JSON login request to `${base}/login` with the api_key secret. */
const login = (base: string, extra: Record<string, unknown> = {}) => ({
  url: `${base}/login`,
  verb: 'POST',
  verify_ssl: 'true',
  headers: { 'Content-Type': 'application/json' },
  body: '{{"key": "{api_key}"}}',
  ...extra,
});

/** An access query that carries `{session}` as a bearer token. */
const bearerQuery = (url: string, extra: Record<string, unknown> = {}) => query(url, { headers: { Authorization: 'Bearer {session}' }, ...extra });

/** One connection with a `session` token and its access queries. */
const withSession = (base: string, token: Record<string, unknown>, queries: Record<string, unknown> = { access: [bearerQuery(`${base}/users?email={email}`)] }) =>
  connection(queries, { tokens: { session: { request: login(base), value: '/token', ...token } } });

const access = (email: string) => ({ type: 'access' as const, identifiers: { email } });
const urlPath = (req: http.IncomingMessage) => pathOf({ url: req.url });

describe('shared tokens', () => {
  it('20 concurrent jobs log in exactly once and all carry that token; a later job reuses it', async () => {
    let logins = 0;
    fx.target = await startTarget((req, res) => {
      if (urlPath(req) === '/login') {
        const value = `tok-${++logins}`;
        return later(res, 150, () => json(res, 200, { token: value }));
      }
      json(res, 200, [{ id: 1 }]);
    });
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: SECRETS });
    const { sink } = memorySink();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => fx.agent!.engine.run(access(`p${i}@initech.com`), { sink })));
    expect(results.map((r) => r.status)).toEqual(Array(20).fill('succeeded'));
    expect(to(fx.target.received, '/login')).toHaveLength(1);
    expect(JSON.parse(to(fx.target.received, '/login')[0]!.body)).toEqual({ key: API_KEY });
    const users = to(fx.target.received, '/users');
    expect(users).toHaveLength(20);
    expect(users.map(bearer)).toEqual(Array(20).fill('tok-1'));

    const again = await fx.agent.engine.run(access('late@initech.com'), { sink });
    expect(again.status).toBe('succeeded');
    expect(to(fx.target.received, '/login')).toHaveLength(1);
    expect(bearer(to(fx.target.received, '/users')[20]!)).toBe('tok-1');
  });

  it('each connection has its own shared token: two connections log in separately', async () => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { token: `tok-${to(fx.target!.received, '/login').length}` }) : json(res, 200, [])));
    fx.agent = makeTestAgent([withSession(fx.target.url, {}), withSession(fx.target.url, {})], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink });
    expect(result.status).toBe('succeeded');
    expect(to(fx.target.received, '/login')).toHaveLength(2);
    expect(new Set(to(fx.target.received, '/users').map(bearer))).toEqual(new Set(['tok-1', 'tok-2']));
  });

  it('a token without any lifetime (not a JWT) is kept until a target refuses it', async () => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { token: 'opaque.token' }) : json(res, 200, [])));
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: SECRETS });
    for (let i = 0; i < 3; i++) expect((await fx.agent.engine.run(access(`p${i}@x.co`), { sink: memorySink().sink })).status).toBe('succeeded');
    await sleep(300);
    expect((await fx.agent.engine.run(access('p9@x.co'), { sink: memorySink().sink })).status).toBe('succeeded');
    expect(to(fx.target.received, '/login')).toHaveLength(1);
    expect(to(fx.target.received, '/users').map(bearer)).toEqual(Array(4).fill('opaque.token'));
  });
});

/** How a login response states a token's lifetime, for a lifetime of about `seconds`. */
interface Lifetime {
  /** Token spec fields. */
  spec: Record<string, unknown>;
  /** The login response for the n-th login, and when that token expires (ms since the epoch). */
  answer(n: number, now: number, seconds: number): Promise<{ body: unknown; expiresAt: number }>;
}

const JWT_KEY = new TextEncoder().encode('a-test-signing-key-of-32-bytes!!');
const jwt = (n: number, expSeconds: number) =>
  new SignJWT({ n }).setProtectedHeader({ alg: 'HS256' }).setSubject('svc').setExpirationTime(expSeconds).sign(JWT_KEY);

const LIFETIMES: Record<string, Lifetime> = {
  ttl_seconds: {
    spec: { ttl_seconds: 2 },
    answer: async (n, now, s) => ({ body: { token: `tok-${n}` }, expiresAt: now + s * 1000 }),
  },
  'expires_in (a nested pointer, Dxtra style)': {
    spec: { value: '/session/accessToken', expires_in: '/session/accessTokenExpiresIn' },
    answer: async (n, now, s) => ({ body: { session: { accessToken: `tok-${n}`, accessTokenExpiresIn: s } }, expiresAt: now + s * 1000 }),
  },
  'expires_in as a numeric string': {
    spec: { expires_in: '/expires_in' },
    answer: async (n, now, s) => ({ body: { token: `tok-${n}`, expires_in: String(s) }, expiresAt: now + s * 1000 }),
  },
  expires_at: {
    spec: { expires_at: '/exp' },
    answer: async (n, now, s) => {
      const at = Math.ceil(now / 1000) + s;
      return { body: { token: `tok-${n}`, exp: at }, expiresAt: at * 1000 };
    },
  },
  'the JWT exp claim': {
    spec: {},
    answer: async (n, now, s) => {
      const at = Math.ceil(now / 1000) + s;
      return { body: { token: await jwt(n, at) }, expiresAt: at * 1000 };
    },
  },
};

describe('shared token edge cases', () => {
  it('a job cancelled while its login is in flight does not fail the jobs waiting on that login', async () => {
    let logins = 0;
    fx.target = await startTarget((req, res) => {
      if (urlPath(req) === '/login') {
        const value = `tok-${++logins}`;
        return later(res, 400, () => json(res, 200, { token: value }));
      }
      json(res, 200, [{ id: 1 }]);
    });
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: SECRETS });
    const cancel = new AbortController();
    const a = fx.agent.engine.run(access('a@x.co'), { sink: memorySink().sink, signal: cancel.signal });
    await waitFor(() => to(fx.target!.received, '/login').length === 1, 'the first login');
    const b = fx.agent.engine.run(access('b@x.co'), { sink: memorySink().sink });
    await sleep(50); // b is now waiting on a's login
    cancel.abort(new AgentError(ErrorCodes.CANCELLED, 'shutting down'));
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.connections[0]!.error?.code).toBe('CANCELLED');
    expect(rb.status).toBe('succeeded');
    expect(to(fx.target.received, '/users').map((r) => [param(r, 'email'), bearer(r)])).toEqual([['b@x.co', 'tok-2']]);
  });

  it('an identifier of the request named like a token: IDENTIFIER_COLLISION, nothing sent', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { token: 't' }));
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: SECRETS });
    const result = await fx.agent.engine.run({ type: 'access', identifiers: { email: 'a@b.co', session: 'forged-token' } }, { sink: memorySink().sink });
    expect(result.connections[0]!.error?.code).toBe('IDENTIFIER_COLLISION');
    expect(result.connections[0]!.error?.message).toContain("'session'");
    expect(fx.target.received).toHaveLength(0);
  });

  it('a secret key named like a token: IDENTIFIER_COLLISION, nothing sent', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { token: 't' }));
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: { default: { api_key: API_KEY, session: 'static' } } });
    const result = await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink });
    expect(result.connections[0]!.error?.code).toBe('IDENTIFIER_COLLISION');
    expect(fx.target.received).toHaveLength(0);
  });
});

describe('token lifetime', () => {
  it.each(Object.keys(LIFETIMES))('%s: reused while fresh, renewed near expiry, and the next job uses the new token', async (kind) => {
    const lifetime = LIFETIMES[kind]!;
    const issued: Array<{ value: string; at: number; expiresAt: number }> = [];
    fx.target = await startTarget(async (req, res) => {
      if (urlPath(req) === '/login') {
        const now = Date.now();
        const { body, expiresAt } = await lifetime.answer(issued.length + 1, now, 2);
        const value = (body as { token?: string; session?: { accessToken: string } }).token ?? (body as { session: { accessToken: string } }).session.accessToken;
        issued.push({ value, at: now, expiresAt });
        return json(res, 200, body);
      }
      json(res, 200, [{ id: 1 }]);
    });
    fx.agent = makeTestAgent([withSession(fx.target.url, lifetime.spec)], { secrets: SECRETS });
    const run = async () => {
      const r = await fx.agent!.engine.run(access('peter@initech.com'), { sink: memorySink().sink });
      expect(r.status).toBe('succeeded');
    };
    await run();
    await run();
    expect(issued).toHaveLength(1); // fresh: reused by the second job
    await waitFor(async () => (await run(), issued.length >= 2), 'a second login', 15_000, 100);
    expect(issued).toHaveLength(2);
    // Renewed no earlier than expiry minus a tenth of the lifetime (generous slack for clock rounding).
    const first = issued[0]!;
    const earliest = first.expiresAt - (first.expiresAt - first.at) / 10 - 150;
    expect(issued[1]!.at).toBeGreaterThanOrEqual(earliest);
    // The job that triggered the login, and the next one, carry the new token.
    await run();
    const users = to(fx.target.received, '/users');
    expect(users.slice(-2).map(bearer)).toEqual([issued[1]!.value, issued[1]!.value]);
    expect(users.slice(0, 2).map(bearer)).toEqual([first.value, first.value]);
  }, 30_000);

  it('is renewed before it expires (at expiry minus a tenth of the lifetime): no request carries an expired token', async () => {
    const TTL_MS = 8000;
    const issued: Array<{ value: string; at: number }> = [];
    const expired: string[] = [];
    fx.target = await startTarget((req, res) => {
      if (urlPath(req) === '/login') {
        issued.push({ value: `tok-${issued.length + 1}`, at: Date.now() });
        return json(res, 200, { token: issued.at(-1)!.value });
      }
      const t = issued.find((i) => i.value === bearer(req));
      if (!t || Date.now() >= t.at + TTL_MS) {
        expired.push(String(bearer(req)));
        return json(res, 401, {});
      }
      json(res, 200, []);
    });
    fx.agent = makeTestAgent([withSession(fx.target.url, { ttl_seconds: TTL_MS / 1000 })], { secrets: SECRETS });
    const run = async () => expect((await fx.agent!.engine.run(access('a@b.co'), { sink: memorySink().sink })).status).toBe('succeeded');
    await waitFor(async () => (await run(), issued.length >= 2), 'the renewal', 20_000, 100);
    // Renewal is due at 7.2 s (8 s minus 0.8 s); the old token expires at 8 s.
    expect(issued[1]!.at - issued[0]!.at).toBeGreaterThanOrEqual(TTL_MS * 0.9 - 150);
    expect(issued[1]!.at - issued[0]!.at).toBeLessThan(TTL_MS);
    expect(expired).toEqual([]);
  }, 30_000);

  it.each([
    ['expires_at in the past', { expires_at: '/exp' }, async (n: number) => ({ token: `tok-${n}`, exp: Math.floor(Date.now() / 1000) - 60 })],
    ['expires_in 0', { expires_in: '/expires_in' }, async (n: number) => ({ token: `tok-${n}`, expires_in: 0 })],
    ['a JWT whose exp has passed', {}, async (n: number) => ({ token: await jwt(n, Math.floor(Date.now() / 1000) - 60) })],
  ])('%s: every job logs in again (an expired token is never sent twice)', async (_what, spec, answer) => {
    let n = 0;
    fx.target = await startTarget(async (req, res) => (urlPath(req) === '/login' ? json(res, 200, await answer(++n)) : json(res, 200, [])));
    fx.agent = makeTestAgent([withSession(fx.target.url, spec)], { secrets: SECRETS });
    for (let i = 0; i < 3; i++) expect((await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink })).status).toBe('succeeded');
    expect(to(fx.target.received, '/login')).toHaveLength(3);
    const sent = to(fx.target.received, '/users').map(bearer);
    expect(new Set(sent).size).toBe(3);
  });

  it.each([
    ['expires_at an hour ahead', { expires_at: '/exp' }, async (n: number) => ({ token: `tok-${n}`, exp: Math.floor(Date.now() / 1000) + 3600 })],
    ['a JWT valid for an hour', {}, async (n: number) => ({ token: await jwt(n, Math.floor(Date.now() / 1000) + 3600) })],
  ])('%s: one login serves many jobs', async (_what, spec, answer) => {
    let n = 0;
    fx.target = await startTarget(async (req, res) => (urlPath(req) === '/login' ? json(res, 200, await answer(++n)) : json(res, 200, [])));
    fx.agent = makeTestAgent([withSession(fx.target.url, spec)], { secrets: SECRETS });
    for (let i = 0; i < 3; i++) expect((await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink })).status).toBe('succeeded');
    expect(to(fx.target.received, '/login')).toHaveLength(1);
  });

  it.each([
    ['a string', 'soon-secret-3'],
    ['an object', { in: 'soon-secret-3' }],
    ['a boolean', true],
  ])('a lifetime pointer holding %s fails with TOKEN_FAILED naming the pointer and the type, not the token or value', async (what, said) => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { token: 'tok-secret-77', expires_in: said }) : json(res, 200, [])));
    fx.agent = makeTestAgent([withSession(fx.target.url, { expires_in: '/expires_in' })], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink });
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('TOKEN_FAILED');
    expect(error.message).toContain('"/expires_in"');
    expect(error.message).toContain(what);
    expect(error.message).not.toContain('tok-secret-77');
    expect(error.message).not.toContain('soon-secret-3');
    expect(to(fx.target.received, '/users')).toHaveLength(0);
  });
});

describe('a target refusing the token (401)', () => {
  it('drops it, logs in exactly once more and retries the query once', async () => {
    let logins = 0;
    fx.target = await startTarget((req, res) => {
      if (urlPath(req) === '/login') return json(res, 200, { token: `tok-${++logins}` });
      if (bearer(req) === 'tok-1') return json(res, 401, { error: 'token revoked' });
      json(res, 200, [{ id: 7 }]);
    });
    fx.agent = makeTestAgent([withSession(fx.target.url, { ttl_seconds: 3600 })], { secrets: SECRETS });
    const { sink, puts } = memorySink();
    const result = await fx.agent.engine.run(access('a@b.co'), { sink });
    expect(result.status).toBe('succeeded');
    expect(puts).toHaveLength(1);
    expect(fx.target.received.map((r) => `${pathOf(r)} ${bearer(r) ?? ''}`.trim())).toEqual(['/login', '/users tok-1', '/login', '/users tok-2']);
    // The new token is the shared one from now on.
    expect((await fx.agent.engine.run(access('c@d.co'), { sink })).status).toBe('succeeded');
    expect(to(fx.target.received, '/login')).toHaveLength(2);
    expect(bearer(fx.target.received.at(-1)!)).toBe('tok-2');
  });

  it('a second 401 fails the connection with HTTP_STATUS; attempts stay bounded (token retry, then the secret refresh)', async () => {
    let logins = 0;
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { token: `tok-${++logins}` }) : json(res, 401, {})));
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink });
    expect(result.connections[0]!.error).toEqual({ code: 'HTTP_STATUS', message: expect.stringContaining('401') });
    // 1st attempt; token dropped → new login, retried once; still 401 → the older rule refreshes the
    // secret once (which drops the tokens fetched with it) → login, retried once; then it fails.
    expect(fx.target.received.map((r) => `${pathOf(r)} ${bearer(r) ?? ''}`.trim())).toEqual([
      '/login',
      '/users tok-1',
      '/login',
      '/users tok-2',
      '/login',
      '/users tok-3',
    ]);
  });

  it('a 401 on a query without tokens does not log in', async () => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { token: 't' }) : json(res, 401, {})));
    const conn = withSession(fx.target.url, {}, { access: [query(`${fx.target.url}/plain?email={email}`, { headers: { 'X-Key': '{api_key}' } })] });
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink });
    expect(result.connections[0]!.error?.code).toBe('HTTP_STATUS');
    expect(to(fx.target.received, '/login')).toHaveLength(0);
  });
});

describe('per-subject tokens (the login uses an identifier)', () => {
  const perSubject = (base: string) =>
    connection(
      { access: [bearerQuery(`${base}/users?email={email}`), bearerQuery(`${base}/orders?email={email}`)] },
      { tokens: { session: { request: login(base, { body: '{{"email": "{email}", "key": "{api_key}"}}' }), value: '/token', ttl_seconds: 3600 } } },
    );

  it('are fetched once per job and never carried for another person, even in concurrent jobs', async () => {
    let n = 0;
    fx.target = await startTarget((req, res, { body }) => {
      if (urlPath(req) === '/login') {
        const value = `tok-for-${JSON.parse(body).email}-${++n}`;
        return later(res, 50 + (n % 3) * 40, () => json(res, 200, { token: value }));
      }
      json(res, 200, [{ id: 1 }]);
    });
    fx.agent = makeTestAgent([perSubject(fx.target.url)], { secrets: SECRETS });
    const people = Array.from({ length: 10 }, (_, i) => `person${i}@initech.com`);
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(people.map((p) => fx.agent!.engine.run(access(p), { sink: memorySink().sink })));
      expect(results.every((r) => r.status === 'succeeded')).toBe(true);
    }
    expect(to(fx.target.received, '/login')).toHaveLength(20); // one per job, two rounds of ten
    const queries = fx.target.received.filter((r) => pathOf(r) !== '/login');
    expect(queries).toHaveLength(40);
    for (const r of queries) expect(bearer(r)).toMatch(new RegExp(`^tok-for-${param(r, 'email')!.replace(/[.]/g, '\\.')}-\\d+$`));
    // Each token value served exactly one job: its two queries.
    const uses = new Map<string, number>();
    for (const r of queries) uses.set(bearer(r)!, (uses.get(bearer(r)!) ?? 0) + 1);
    expect([...uses.values()]).toEqual(Array(20).fill(2));
  });

  it('two people in concurrent jobs: each access request carries its own person\'s token', async () => {
    fx.target = await startTarget((req, res, { body }) => {
      if (urlPath(req) === '/login') {
        const email = JSON.parse(body).email as string;
        // Alice's login is slow, so Bob's token exists while Alice's job still waits.
        return later(res, email.startsWith('alice') ? 300 : 10, () => json(res, 200, { token: `tok-${email}` }));
      }
      json(res, 200, [{ id: 1 }]);
    });
    fx.agent = makeTestAgent([perSubject(fx.target.url)], { secrets: SECRETS });
    const [a, b] = await Promise.all([fx.agent.engine.run(access('alice@x.co'), { sink: memorySink().sink }), fx.agent.engine.run(access('bob@x.co'), { sink: memorySink().sink })]);
    expect([a.status, b.status]).toEqual(['succeeded', 'succeeded']);
    const queries = fx.target.received.filter((r) => pathOf(r) !== '/login');
    expect(queries.map((r) => [param(r, 'email'), bearer(r)]).sort()).toEqual([
      ['alice@x.co', 'tok-alice@x.co'],
      ['alice@x.co', 'tok-alice@x.co'],
      ['bob@x.co', 'tok-bob@x.co'],
      ['bob@x.co', 'tok-bob@x.co'],
    ]);
  });
});

describe('a token depending on another token', () => {
  const chained = (base: string, baseBody: string) =>
    connection(
      { access: [bearerQuery(`${base}/users?email={email}`)] },
      {
        tokens: {
          session: {
            request: { url: `${base}/exchange`, verb: 'POST', verify_ssl: 'true', headers: { Authorization: 'Bearer {base}' } },
            value: '/session',
          },
          base: { request: login(base, { body: baseBody }), value: '/token' },
        },
      },
    );

  it('fetches the dependency first, fills it into the dependent login, and shares both', async () => {
    let n = 0;
    fx.target = await startTarget((req, res) => {
      if (urlPath(req) === '/login') return json(res, 200, { token: `base-${++n}` });
      if (urlPath(req) === '/exchange') return json(res, 200, { session: `sess-for-${bearer(req)}` });
      json(res, 200, []);
    });
    fx.agent = makeTestAgent([chained(fx.target.url, '{{"key": "{api_key}"}}')], { secrets: SECRETS });
    for (const p of ['a@x.co', 'b@x.co']) expect((await fx.agent.engine.run(access(p), { sink: memorySink().sink })).status).toBe('succeeded');
    expect(fx.target.received.map((r) => `${pathOf(r)} ${bearer(r) ?? ''}`.trim())).toEqual([
      '/login',
      '/exchange base-1',
      '/users sess-for-base-1',
      '/users sess-for-base-1',
    ]);
  });

  it('a 401 to the dependent login drops the token it carried, fetches it again, and retries once', async () => {
    let n = 0;
    fx.target = await startTarget((req, res) => {
      if (urlPath(req) === '/login') return json(res, 200, { token: `base-${++n}` });
      if (urlPath(req) === '/exchange') return bearer(req) === 'base-1' ? json(res, 401, {}) : json(res, 200, { session: `sess-for-${bearer(req)}` });
      json(res, 200, []);
    });
    fx.agent = makeTestAgent([chained(fx.target.url, '{{"key": "{api_key}"}}')], { secrets: SECRETS });
    expect((await fx.agent.engine.run(access('a@x.co'), { sink: memorySink().sink })).status).toBe('succeeded');
    expect(fx.target.received.map((r) => `${pathOf(r)} ${bearer(r) ?? ''}`.trim())).toEqual([
      '/login',
      '/exchange base-1',
      '/login',
      '/exchange base-2',
      '/users sess-for-base-2',
    ]);
  });

  it('depending on a per-subject token makes the dependent token per-subject too', async () => {
    fx.target = await startTarget((req, res, { body }) => {
      if (urlPath(req) === '/login') return json(res, 200, { token: `base-${JSON.parse(body).email}` });
      if (urlPath(req) === '/exchange') return json(res, 200, { session: `sess-${bearer(req)}` });
      json(res, 200, []);
    });
    fx.agent = makeTestAgent([chained(fx.target.url, '{{"email": "{email}"}}')], { secrets: SECRETS });
    const [a, b] = await Promise.all(['a@x.co', 'b@x.co'].map((p) => fx.agent!.engine.run(access(p), { sink: memorySink().sink })));
    expect([a!.status, b!.status]).toEqual(['succeeded', 'succeeded']);
    expect(to(fx.target.received, '/exchange')).toHaveLength(2);
    expect(to(fx.target.received, '/users').map((r) => [param(r, 'email'), bearer(r)]).sort()).toEqual([
      ['a@x.co', 'sess-base-a@x.co'],
      ['b@x.co', 'sess-base-b@x.co'],
    ]);
  });
});

describe('a failed login fails the connection with TOKEN_FAILED', () => {
  it.each([401, 500])('login answering %d: the message names the token and the status; no query is sent', async (status) => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, status, { error: 'nope' }) : json(res, 200, [])));
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink });
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('TOKEN_FAILED');
    expect(error.message).toContain("'session'");
    expect(error.message).toContain(String(status));
    expect(to(fx.target.received, '/users')).toHaveLength(0);
    expect(to(fx.target.received, '/login').length).toBeGreaterThanOrEqual(1);
    expect(to(fx.target.received, '/login').length).toBeLessThanOrEqual(2); // at most one secret refresh
  });

  it('a login status in fail_retry_response_codes is retried like any query', async () => {
    fx.target = await startTarget((req, res, { n }) => (urlPath(req) === '/login' ? json(res, n === 1 ? 503 : 200, { token: 'tok' }) : json(res, 200, [])));
    const conn = connection({ access: [bearerQuery(`${fx.target.url}/users`)] }, { tokens: { session: { request: login(fx.target.url, { fail_retry_response_codes: [503] }), value: '/token' } } });
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    expect((await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink })).status).toBe('succeeded');
    expect(to(fx.target.received, '/login')).toHaveLength(2);
  });

  it.each([
    ['nothing', { other: 'x' }],
    ['a number', { token: 12345 }],
    ['an object', { token: { inner: 'inner-secret-9' } }],
    ['an array', { token: ['inner-secret-9'] }],
    ['null', { token: null }],
    ['an empty string', { token: '' }],
  ])('value pointer finding %s: the message names the pointer, never what was there', async (what, body) => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, body) : json(res, 200, [])));
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink });
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('TOKEN_FAILED');
    expect(error.message).toContain("'session'");
    expect(error.message).toContain('"/token"');
    expect(error.message).toContain(what);
    expect(error.message).not.toContain('inner-secret-9');
    expect(error.message).not.toContain('12345');
    expect(to(fx.target.received, '/users')).toHaveLength(0);
  });

  it('expect on the login request: a response without the confirmation is TOKEN_FAILED', async () => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { ok: false, token: 'tok-unconfirmed-1' }) : json(res, 200, [])));
    const conn = connection({ access: [bearerQuery(`${fx.target.url}/users`)] }, { tokens: { session: { request: login(fx.target.url, { expect: { '/ok': true } }), value: '/token' } } });
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const error = (await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink })).connections[0]!.error!;
    expect(error.code).toBe('TOKEN_FAILED');
    expect(error.message).toContain("'session'");
    expect(error.message).toContain('"/ok"');
    expect(error.message).not.toContain('tok-unconfirmed-1');
    expect(to(fx.target.received, '/users')).toHaveLength(0);
  });

  it('a login response that is not JSON: TOKEN_FAILED, body not quoted', async () => {
    fx.target = await startTarget((req, res) => {
      if (urlPath(req) !== '/login') return json(res, 200, []);
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>login page secret-html-1</html>');
    });
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink });
    expect(result.connections[0]!.error?.code).toBe('TOKEN_FAILED');
    expect(result.connections[0]!.error?.message).toContain("'session'");
    expect(JSON.stringify(result)).not.toContain('secret-html-1');
  });
});

describe('login bodies', () => {
  it('JSON login: the body arrives exactly as templated, with its Content-Type', async () => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/v1/signin/pat' ? json(res, 200, { session: { accessToken: 'at-1', accessTokenExpiresIn: 900 } }) : json(res, 200, [])));
    const conn = connection(
      { access: [bearerQuery(`${fx.target.url}/users?email={email}`)] },
      {
        tokens: {
          session: {
            request: { url: `${fx.target.url}/v1/signin/pat`, verb: 'POST', verify_ssl: 'true', headers: { 'Content-Type': 'application/json' }, body: '{{"personalAccessToken": "{pat}"}}' },
            value: '/session/accessToken',
            expires_in: '/session/accessTokenExpiresIn',
          },
        },
      },
    );
    fx.agent = makeTestAgent([conn], { secrets: { default: { pat: 'pat_4f9a8b' } } });
    expect((await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink })).status).toBe('succeeded');
    const [signin] = to(fx.target.received, '/v1/signin/pat');
    expect(signin!.method).toBe('POST');
    expect(signin!.headers['content-type']).toBe('application/json');
    expect(signin!.body).toBe('{"personalAccessToken": "pat_4f9a8b"}');
    expect(bearer(to(fx.target.received, '/users')[0]!)).toBe('at-1');
  });

  it('form login (OAuth client credentials): secrets as they are, an identifier form-encoded', async () => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/oauth/token' ? json(res, 200, { access_token: 'oauth-1', token_type: 'Bearer', expires_in: 3600 }) : json(res, 200, [])));
    const conn = connection(
      { access: [bearerQuery(`${fx.target.url}/users?email={email}`)] },
      {
        tokens: {
          session: {
            request: {
              url: `${fx.target.url}/oauth/token`,
              verb: 'POST',
              verify_ssl: 'true',
              headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
              body: 'grant_type=password&client_id={client_id}&client_secret={client_secret}&username={email}',
            },
            value: '/access_token',
            expires_in: '/expires_in',
          },
        },
      },
    );
    fx.agent = makeTestAgent([conn], { secrets: { default: { client_id: 'cid-1', client_secret: 'cs_9x' } } });
    const email = 'a+b&role=admin@x.co';
    expect((await fx.agent.engine.run(access(email), { sink: memorySink().sink })).status).toBe('succeeded');
    const [token] = to(fx.target.received, '/oauth/token');
    expect(token!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(token!.body).toBe('grant_type=password&client_id=cid-1&client_secret=cs_9x&username=a%2Bb%26role%3Dadmin%40x.co');
    expect(Object.fromEntries(new URLSearchParams(token!.body))).toEqual({ grant_type: 'password', client_id: 'cid-1', client_secret: 'cs_9x', username: email });
  });

  it('a token value in a form body is form-encoded', async () => {
    const base = 'b a&c=d+e/f%g';
    fx.target = await startTarget((req, res) => {
      if (urlPath(req) === '/login') return json(res, 200, { token: base });
      if (urlPath(req) === '/exchange') return json(res, 200, { token: 'sess' });
      json(res, 200, []);
    });
    const conn = connection(
      { access: [bearerQuery(`${fx.target.url}/users`)] },
      {
        tokens: {
          base: { request: login(fx.target.url), value: '/token' },
          session: {
            request: { url: `${fx.target.url}/exchange`, verb: 'POST', verify_ssl: 'true', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'grant_type=jwt&assertion={base}' },
            value: '/token',
          },
        },
      },
    );
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    expect((await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink })).status).toBe('succeeded');
    const [exchange] = to(fx.target.received, '/exchange');
    expect(exchange!.body).toBe('grant_type=jwt&assertion=b+a%26c%3Dd%2Be%2Ff%25g');
    expect(new URLSearchParams(exchange!.body).get('assertion')).toBe(base);
  });
});

describe('token values are encoded like identifiers', () => {
  const HOSTILE = 'a b&c=d/e?f#g%h"i\\j+k}{\'(x)*!';

  it('percent-encoded in a URL', async () => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { token: HOSTILE }) : json(res, 200, [])));
    const conn = withSession(fx.target.url, {}, { access: [query(`${fx.target.url}/users?access_token={session}&email={email}`, { headers: {} })] });
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    expect((await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink })).status).toBe('succeeded');
    const [users] = to(fx.target.received, '/users');
    expect(users!.url).toBe(`/users?access_token=${percent(HOSTILE)}&email=a%40b.co`);
    expect(param(users!, 'access_token')).toBe(HOSTILE);
    expect(param(users!, 'email')).toBe('a@b.co');
  });

  it('JSON-escaped in a JSON body (inside a string and as a whole value)', async () => {
    const value = `${HOSTILE}\n\t", "admin": true, "x": "`;
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { token: value }) : json(res, 200, {})));
    const conn = withSession(fx.target.url, {}, {
      delete: [
        query(`${fx.target.url}/erase`, {
          verb: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: '{{"token": "{session}", "same": {session}, "email": "{email}"}}',
        }),
      ],
    });
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const result = await fx.agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.co' } });
    expect(result.status).toBe('succeeded');
    const [erase] = to(fx.target.received, '/erase');
    expect(JSON.parse(erase!.body)).toEqual({ token: value, same: value, email: 'a@b.co' });
  });

  it.each([
    ['CR LF', 'tok\r\nX-Injected: yes'],
    ['LF', 'tok\nX-Injected: yes'],
    ['NUL', 'tok\u0000X-Injected'],
  ])('refused in a header when it holds %s: IDENTIFIER_INVALID, nothing sent to the query', async (_what, value) => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { token: value }) : json(res, 200, [])));
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: SECRETS });
    const result = await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink });
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('IDENTIFIER_INVALID');
    expect(error.message).toContain('session');
    expect(error.message).not.toContain('X-Injected');
    expect(to(fx.target.received, '/users')).toHaveLength(0);
    expect(fx.target.received.some((r) => 'x-injected' in r.headers)).toBe(false);
  });
});

describe('token values never leak', () => {
  it('not in INFO logs, error messages or job results, across retries, refusals and failures', async () => {
    const TOKENS = ['TOKSECRET-first-8f2a', 'TOKSECRET-second-91bc', 'TOKSECRET-subject-44de', 'TOKSECRET-echo-77aa', 'TOKSECRET-badexp-5e5e'];
    fx.target = await startTarget((req, res, { body }) => {
      const path = urlPath(req);
      const sent = bearer(req) ?? param({ url: req.url }, 'access_token');
      switch (path) {
        case '/a/login':
          return json(res, 200, { token: to(fx.target!.received, '/a/login').length === 1 ? TOKENS[0] : TOKENS[1] });
        case '/a/users': // refuses the first token, echoing it
          return sent === TOKENS[0] ? json(res, 401, { error: `token ${sent} revoked` }) : json(res, 200, [{ id: 1 }]);
        case '/b/login':
          return json(res, 200, { token: TOKENS[2], echo: JSON.parse(body) });
        case '/b/users': // fails, echoing the token in the body and a header
          return json(res, 500, { error: `bad token ${sent}` }, { 'x-token': String(sent) });
        case '/c/login':
          return json(res, 200, { token: TOKENS[3], expires_in: TOKENS[3] });
        case '/d/login':
          return json(res, 200, { token: { value: TOKENS[4] } });
        default:
          return json(res, 404, {});
      }
    });
    const u = fx.target.url;
    const conns = [
      connection({ access: [bearerQuery(`${u}/a/users?email={email}`)] }, { tokens: { session: { request: login(`${u}/a`), value: '/token' } } }),
      connection(
        { access: [query(`${u}/b/users?access_token={session}&email={email}`, { headers: {} })] },
        { tokens: { session: { request: login(`${u}/b`, { body: '{{"email": "{email}"}}' }), value: '/token' } } },
      ),
      connection({ access: [bearerQuery(`${u}/c/users`)] }, { tokens: { session: { request: login(`${u}/c`), value: '/token', expires_in: '/expires_in' } } }),
      connection({ access: [bearerQuery(`${u}/d/users`)] }, { tokens: { session: { request: login(`${u}/d`), value: '/token' } } }),
    ];
    fx.agent = makeTestAgent(conns, { secrets: SECRETS, level: 'INFO' });
    const result = await fx.agent.engine.run(access('peter@initech.com'), { sink: memorySink().sink });
    expect(result.connections.map((c) => c.status)).toEqual(['succeeded', 'failed', 'failed', 'failed']);
    expect(result.connections.map((c) => c.error?.code)).toEqual([undefined, 'HTTP_STATUS', 'TOKEN_FAILED', 'TOKEN_FAILED']);
    // Every token really was handed out (the test can fail), and none shows anywhere.
    expect(to(fx.target.received, '/a/users').map(bearer)).toEqual([TOKENS[0], TOKENS[1]]);
    expect(param(to(fx.target.received, '/b/users')[0]!, 'access_token')).toBe(TOKENS[2]);
    const logs = fx.agent.logs.lines().join('\n');
    expect(logs).toContain('target refused the token');
    expect(leaks(logs, TOKENS)).toEqual([]);
    expect(leaks(JSON.stringify(result), TOKENS)).toEqual([]);
    expect(leaks(logs + JSON.stringify(result), [API_KEY, 'peter@initech.com'])).toEqual([]);
  });
});

describe('test queries', () => {
  it('a test query using a shared token logs in and is healthy', async () => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { token: 'health-tok' }) : json(res, 200, { ok: true })));
    const conn = withSession(fx.target.url, {}, { test: [bearerQuery(`${fx.target.url}/health`)], delete: [bearerQuery(`${fx.target.url}/d`)] });
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const [result] = await fx.agent.engine.test();
    expect(result).toMatchObject({ healthy: true });
    expect(fx.target.received.map((r) => `${pathOf(r)} ${bearer(r) ?? ''}`.trim())).toEqual(['/login', '/health health-tok']);
  });

  it('a test query using a per-subject token fails with a clear error and sends nothing', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { token: 't' }));
    const conn = connection({ test: [bearerQuery(`${fx.target.url}/health`)], delete: [bearerQuery(`${fx.target.url}/d`)] }, { tokens: { session: { request: login(fx.target.url, { body: '{{"email": "{email}"}}' }), value: '/token' } } });
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const [result] = await fx.agent.engine.test();
    expect(result!.healthy).toBe(false);
    expect(result!.error?.code).toBe('TEMPLATE_MISSING_VARIABLE');
    expect(result!.error?.message).toContain("token 'session'");
    expect(result!.error?.message).toContain('{email}');
    expect(result!.error?.message).toMatch(/test queries carry no identifiers/);
    expect(fx.target.received).toHaveLength(0);
  });
});

describe('dry run (engine.plan)', () => {
  it('lists each login before the first query needing it, secrets as ****, tokens as <token name>, and sends nothing', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { token: 'never' }));
    const u = fx.target.url;
    const conn = connection(
      { access: [bearerQuery(`${u}/users?email={email}`), query(`${u}/orders?email={email}`, { headers: { Authorization: 'Bearer {session}', 'X-Base': '{base}' } })] },
      {
        tokens: {
          session: { request: { url: `${u}/exchange`, verb: 'POST', verify_ssl: 'true', headers: { Authorization: 'Bearer {base}' } }, value: '/token' },
          base: { request: login(u, { headers: { 'Content-Type': 'application/json', 'X-Api-Key': '{api_key}' } }), value: '/token' },
        },
      },
    );
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const plan = await fx.agent.engine.plan(access('peter@initech.com'));
    expect(plan.map((p) => p.query)).toEqual(['tokens.base', 'tokens.session', 'access[0]', 'access[1]']);
    expect(plan[0]!.request).toEqual({
      method: 'POST',
      url: `${u}/login`,
      headers: { 'Content-Type': 'application/json', 'X-Api-Key': '****' },
      body: '{"key": "****"}',
    });
    expect(plan[1]!.request).toMatchObject({ method: 'POST', url: `${u}/exchange`, headers: { Authorization: 'Bearer <token base>' } });
    expect(plan[2]!.request).toMatchObject({ method: 'GET', url: `${u}/users?email=peter%40initech.com`, headers: { Authorization: 'Bearer <token session>' } });
    expect(plan[3]!.request?.headers).toEqual({ Authorization: 'Bearer <token session>', 'X-Base': '<token base>' });
    expect(JSON.stringify(plan)).not.toContain(API_KEY);
    expect(plan.every((p) => p.error === undefined)).toBe(true);
    await sleep(50);
    expect(fx.target.received).toHaveLength(0);
  });

  it('a shared token already fetched by a job is still shown as <token session>, never its value', async () => {
    fx.target = await startTarget((req, res) => (urlPath(req) === '/login' ? json(res, 200, { token: 'cached-tok-3c3c' }) : json(res, 200, [])));
    fx.agent = makeTestAgent([withSession(fx.target.url, {})], { secrets: SECRETS });
    expect((await fx.agent.engine.run(access('a@b.co'), { sink: memorySink().sink })).status).toBe('succeeded');
    const before = fx.target.received.length;
    const plan = await fx.agent.engine.plan(access('a@b.co'));
    expect(plan.map((p) => p.query)).toEqual(['tokens.session', 'access[0]']);
    expect(plan[1]!.request?.headers).toEqual({ Authorization: 'Bearer <token session>' });
    expect(JSON.stringify(plan)).not.toContain('cached-tok-3c3c');
    expect(fx.target.received).toHaveLength(before);
  });

  it('a per-subject login shows the identifier it carries, still sending nothing', async () => {
    fx.target = await startTarget((_req, res) => json(res, 200, { token: 'never' }));
    const conn = connection(
      { access: [bearerQuery(`${fx.target.url}/users`)] },
      { tokens: { session: { request: login(fx.target.url, { body: '{{"email": "{email}", "key": "{api_key}"}}' }), value: '/token' } } },
    );
    fx.agent = makeTestAgent([conn], { secrets: SECRETS });
    const plan = await fx.agent.engine.plan(access('peter@initech.com'));
    expect(plan.map((p) => p.query)).toEqual(['tokens.session', 'access[0]']);
    expect(plan[0]!.request?.body).toBe('{"email": "peter@initech.com", "key": "****"}');
    expect(plan[1]!.request?.headers).toEqual({ Authorization: 'Bearer <token session>' });
    await sleep(50);
    expect(fx.target.received).toHaveLength(0);
  });
});
