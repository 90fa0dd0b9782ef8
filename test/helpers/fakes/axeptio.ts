/**
 * A fake Axeptio API (seed 003): `POST /v1/auth/local/signin` issues a 15-day token, accepted as
 * `Authorization: Bearer <token>` or `?access_token=<token>`; an unauthenticated request on a
 * private resource gets 403 (the seed's words). Lists are paged with `page`/`perPage`.
 *
 * Not in the seed, assumed here: the sign-in body (`{"email"|"username","password"}` as JSON), the
 * consent proofs route `GET /v1/app/consents/{projectId}?identifier=…` (a JSON array), page
 * numbers starting at 1, perPage capped at 100, and the pagination headers' names.
 */
import type http from 'node:http';
import { randomBytes } from 'node:crypto';
import { startTarget, json } from '../target.js';

/** One request the fake received. */
export interface FakeCall {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A consent proof as the fake stores it. */
export interface AxeptioConsent {
  _id: string;
  projectId: string;
  identifier: string;
  token: string;
  collection: string;
  preferences: Record<string, boolean>;
  createdAt: string;
}

/** Options of {@link startAxeptioFake}. */
export interface AxeptioFakeOptions {
  /** The API user's email. Default `dpo@initech.example`. */
  username?: string;
  /** The API user's password. Default `axeptio-test-password`. */
  password?: string;
  /** Token lifetime. Default 15 days. */
  tokenTtlSeconds?: number;
  /** Status for a missing/unknown/expired token. Default 403 (the seed); 401 to model a stricter API. */
  authFailureStatus?: 401 | 403;
}

/** A running fake Axeptio. */
export interface AxeptioFake {
  url: string;
  username: string;
  password: string;
  /** The project the API user can read. */
  projectId: string;
  calls: FakeCall[];
  /** `logins`: successful sign-ins. */
  counters: { logins: number };
  /** Seed `count` consent proofs for a person (identifier = their email). */
  addPerson(email: string, count?: number): AxeptioConsent[];
  consents(email: string): AxeptioConsent[];
  /** Every token issued so far expires now. */
  expireTokens(): void;
  close(): Promise<void>;
}

const MAX_PER_PAGE = 100;

/** Start a fake Axeptio on 127.0.0.1:0. */
export async function startAxeptioFake(opts: AxeptioFakeOptions = {}): Promise<AxeptioFake> {
  const username = opts.username ?? 'dpo@initech.example';
  const password = opts.password ?? 'axeptio-test-password';
  const ttl = opts.tokenTtlSeconds ?? 15 * 24 * 3600;
  const denied = opts.authFailureStatus ?? 403;
  const projectId = randomBytes(12).toString('hex');
  const project = { _id: projectId, title: 'Initech', websiteURL: 'https://initech.example', organizationId: null };
  const tokens = new Map<string, number>();
  const people = new Map<string, AxeptioConsent[]>();
  const vendors = Array.from({ length: 25 }, (_, i) => ({ id: `vendor-${i + 1}`, data: { title: `Vendor ${i + 1}`, website: `https://vendor${i + 1}.example` } }));
  const calls: FakeCall[] = [];
  const counters = { logins: 0 };

  /** One page of `items` per the request's page/perPage, with pagination headers. */
  const paged = (res: http.ServerResponse, u: URL, items: unknown[]) => {
    const page = Number(u.searchParams.get('page') ?? '1');
    const perPage = Math.min(Number(u.searchParams.get('perPage') ?? '10'), MAX_PER_PAGE);
    if (!Number.isInteger(page) || page < 1 || !Number.isInteger(perPage) || perPage < 1) return json(res, 400, { error: 'Bad Request', message: 'page and perPage must be positive integers' });
    const slice = items.slice((page - 1) * perPage, page * perPage);
    json(res, 200, slice, {
      'x-pagination-page': String(page),
      'x-pagination-per-page': String(perPage),
      'x-pagination-total': String(items.length),
      'x-pagination-page-count': String(Math.ceil(items.length / perPage)),
    });
  };

  const target = await startTarget((req, res, { body }) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const call: FakeCall = { method: req.method ?? '', path: u.pathname, query: Object.fromEntries(u.searchParams), headers: req.headers, body };
    calls.push(call);
    if (call.method === 'POST' && u.pathname === '/v1/auth/local/signin') {
      let given: { email?: unknown; username?: unknown; password?: unknown } = {};
      try {
        given = JSON.parse(body) as typeof given;
      } catch {
        return json(res, 400, { error: 'Bad Request', message: 'Body must be JSON' });
      }
      if ((given.email ?? given.username) !== username || given.password !== password) return json(res, 401, { error: 'Unauthorized', message: 'Wrong email or password' });
      const token = randomBytes(24).toString('base64url');
      tokens.set(token, Date.now() + ttl * 1000);
      counters.logins++;
      return json(res, 200, { token, user: { _id: 'user-1', email: username } });
    }
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? u.searchParams.get('access_token') ?? '';
    const until = tokens.get(bearer);
    if (until === undefined || until <= Date.now()) return json(res, denied, { error: denied === 403 ? 'Forbidden' : 'Unauthorized', message: 'Invalid or expired access token' });
    if (call.method !== 'GET') return json(res, 405, { error: 'Method Not Allowed' });
    if (u.pathname === '/v1/vault/projects') return paged(res, u, [project]);
    if (u.pathname === `/v1/vault/projects/${projectId}`) return json(res, 200, project);
    if (u.pathname === '/v1/vendors/solutions') return paged(res, u, vendors);
    const consents = /^\/v1\/app\/consents\/([^/]+)$/.exec(u.pathname);
    if (consents) {
      if (consents[1] !== projectId) return json(res, 404, { error: 'Not Found', message: 'Project not found' });
      const identifier = u.searchParams.get('identifier');
      if (!identifier) return json(res, 400, { error: 'Bad Request', message: 'identifier is required' });
      return paged(res, u, people.get(identifier) ?? []);
    }
    return json(res, 404, { error: 'Not Found' });
  });

  return {
    url: target.url,
    username,
    password,
    projectId,
    calls,
    counters,
    addPerson(email, count = 3) {
      const list = Array.from({ length: count }, (_, i) => ({
        _id: randomBytes(12).toString('hex'),
        projectId,
        identifier: email,
        token: `${email}#${i + 1}`,
        collection: 'cookies',
        preferences: { google_analytics: i % 2 === 0, facebook_pixel: false },
        createdAt: new Date(Date.UTC(2024, 0, 1 + i)).toISOString(),
      }));
      people.set(email, list);
      return list;
    },
    consents: (email) => people.get(email) ?? [],
    expireTokens() {
      for (const t of tokens.keys()) tokens.set(t, 0);
    },
    close: () => target.close(),
  };
}
