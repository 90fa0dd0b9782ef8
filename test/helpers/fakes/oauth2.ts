/**
 * A fake OAuth 2.0 client-credentials setup: an RFC 6749 §4.4 token endpoint
 * (`POST /oauth2/token`, form-encoded, client authenticated by HTTP Basic or by
 * `client_id`/`client_secret` in the body, §2.3.1) and a protected internal API (RFC 6750 bearer
 * tokens) answering `{"data": [...], "page", "per_page", "total"}`, paged with `page`/`per_page`.
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

/** Options of {@link startOAuth2Fake}. */
export interface OAuth2FakeOptions {
  clientId?: string;
  clientSecret?: string;
  /** Token lifetime sent as `expires_in`. Default 3600. */
  expiresIn?: number;
  /** Largest per_page honoured. Default 100. */
  maxPerPage?: number;
}

/** A running fake OAuth2 authorization server + internal API. */
export interface OAuth2Fake {
  url: string;
  clientId: string;
  clientSecret: string;
  /** `base64(client_id:client_secret)` (form-urlencoded parts), the HTTP Basic credentials. */
  basic: string;
  calls: FakeCall[];
  /** `logins`: tokens issued; `deletes`: subjects deleted. */
  counters: { logins: number; deletes: number };
  /** Seed `count` records for a person. */
  addPerson(email: string, count?: number): Record<string, unknown>[];
  records(email: string): Record<string, unknown>[] | undefined;
  /** Every access token issued so far expires now. */
  expireTokens(): void;
  close(): Promise<void>;
}

const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
const formEncode = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');

/** Start the fake on 127.0.0.1:0. */
export async function startOAuth2Fake(opts: OAuth2FakeOptions = {}): Promise<OAuth2Fake> {
  const clientId = opts.clientId ?? 'dsr-agent';
  const clientSecret = opts.clientSecret ?? 'client-secret with spaces&symbols';
  const expiresIn = opts.expiresIn ?? 3600;
  const maxPerPage = opts.maxPerPage ?? 100;
  const tokens = new Map<string, number>();
  const people = new Map<string, Record<string, unknown>[]>();
  const calls: FakeCall[] = [];
  const counters = { logins: 0, deletes: 0 };
  const noStore = { 'cache-control': 'no-store', pragma: 'no-cache' };

  const tokenEndpoint = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => {
    const oauthError = (status: number, error: string, description: string, headers: http.OutgoingHttpHeaders = {}) =>
      json(res, status, { error, error_description: description }, { ...noStore, ...headers });
    if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      return oauthError(400, 'invalid_request', 'the request must be application/x-www-form-urlencoded');
    }
    const form = new URLSearchParams(body);
    const basic = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (basic && form.has('client_secret')) return oauthError(400, 'invalid_request', 'use only one client authentication method');
    let id: string | null;
    let secret: string | null;
    if (basic) {
      const decoded = Buffer.from(basic, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      [id, secret] = colon < 0 ? [null, null] : [formDecode(decoded.slice(0, colon)), formDecode(decoded.slice(colon + 1))];
    } else [id, secret] = [form.get('client_id'), form.get('client_secret')];
    if (id !== clientId || secret !== clientSecret) {
      return oauthError(401, 'invalid_client', 'client authentication failed', basic ? { 'www-authenticate': 'Basic realm="token"' } : {});
    }
    const grant = form.get('grant_type');
    if (!grant) return oauthError(400, 'invalid_request', 'grant_type is required');
    if (grant !== 'client_credentials') return oauthError(400, 'unsupported_grant_type', `grant_type ${grant} is not supported`);
    const token = randomBytes(24).toString('base64url');
    tokens.set(token, Date.now() + expiresIn * 1000);
    counters.logins++;
    const scope = form.get('scope');
    json(res, 200, { access_token: token, token_type: 'Bearer', expires_in: expiresIn, ...(scope ? { scope } : {}) }, noStore);
  };

  const target = await startTarget((req, res, { body }) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const call: FakeCall = { method: req.method ?? '', path: u.pathname, query: Object.fromEntries(u.searchParams), headers: req.headers, body };
    calls.push(call);
    if (u.pathname === '/oauth2/token') {
      return call.method === 'POST' ? tokenEndpoint(req, res, body) : json(res, 405, { error: 'invalid_request', error_description: 'use POST' });
    }
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!bearer) return json(res, 401, { error: 'unauthorized' }, { 'www-authenticate': 'Bearer realm="api"' });
    const until = tokens.get(bearer);
    if (until === undefined || until <= Date.now()) {
      return json(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer realm="api", error="invalid_token", error_description="the access token expired or is unknown"' });
    }
    const route = `${call.method} ${u.pathname}`;
    if (route === 'GET /v1/health') return json(res, 200, { status: 'ok' });
    const email = u.searchParams.get('email');
    if (route === 'GET /v1/subjects/records') {
      if (!email) return json(res, 400, { error: 'email is required' });
      const page = Number(u.searchParams.get('page') ?? '1');
      const perPage = Math.min(Number(u.searchParams.get('per_page') ?? '20'), maxPerPage);
      if (!Number.isInteger(page) || page < 1 || !Number.isInteger(perPage) || perPage < 1) return json(res, 400, { error: 'page and per_page must be positive integers' });
      const all = people.get(email) ?? [];
      return json(res, 200, { data: all.slice((page - 1) * perPage, page * perPage), page, per_page: perPage, total: all.length });
    }
    if (route === 'DELETE /v1/subjects') {
      if (!email) return json(res, 400, { error: 'email is required' });
      if (!people.delete(email)) return json(res, 404, { error: 'no such subject' });
      counters.deletes++;
      res.writeHead(204);
      res.end();
      return;
    }
    return json(res, 404, { error: 'not found' });
  });

  return {
    url: target.url,
    clientId,
    clientSecret,
    basic: Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString('base64'),
    calls,
    counters,
    addPerson(email, count = 3) {
      const list = Array.from({ length: count }, (_, i) => ({ id: i + 1, email, kind: i % 2 ? 'order' : 'login', detail: { n: i + 1, note: `record ${i + 1} of ${email}` } }));
      people.set(email, list);
      return list;
    },
    records: (email) => people.get(email),
    expireTokens() {
      for (const t of tokens.keys()) tokens.set(t, 0);
    },
    close: () => target.close(),
  };
}
