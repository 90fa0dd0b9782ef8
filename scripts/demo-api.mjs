#!/usr/bin/env node
// A small demo API for config/example.json: a "User Service" shaped like the DataGrail seed's example,
// an "Orders Service", and a "Support Desk" behind an OAuth2 client-credentials login that wraps and
// pages its answers. Listens on 127.0.0.1:$DEMO_API_PORT (default 8765).
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const USER_AUTH = 'Basic ' + Buffer.from('demo:demo-password').toString('base64');
const ORDERS_KEY = 'demo-orders-key';
const PEOPLE = {
  'peter@initech.com': {
    phone: '+1 555 0100',
    records: [
      { first_name: 'Peter', last_name: 'Gibbons', company: 'Initech', friends: ['Samir', 'Michael'] },
      { address_type: 'Home', address: { street: '191 N. Lamar', city: 'Flander', state: 'Illinois', zip_code: '77070' } },
    ],
    orders: [
      { order_id: 1001, placed_at: '2026-10-01T09:30:00Z', total: 42.5, items: [{ sku: 'STAPLER-RED', qty: 1 }, { sku: 'TPS-COVER', qty: 3 }], note: 'Deliver to "basement", desk 4' },
    ],
  },
};

const SUPPORT_CLIENT = { id: 'dsr-agent-demo', secret: 'demo-support-secret' };
const TICKETS = {
  'peter@initech.com': [
    { id: 'T-1', subject: 'Stapler missing', opened_at: '2026-09-02T10:00:00Z' },
    { id: 'T-2', subject: 'TPS report cover sheets', opened_at: '2026-09-15T16:20:00Z' },
    { id: 'T-3', subject: 'Moved to basement', opened_at: '2026-10-03T08:05:00Z' },
  ],
};
const supportTokens = new Set();
// A Dastra-shaped privacy platform (seed 002): one data subject request waiting for the agent.
const DASTRA_AUTH = 'Basic ' + Buffer.from('demo-public:demo-private').toString('base64');
const DSRS = [
  { id: 101, state: 'Open', identityValidated: true, purposes: ['Access'], email: 'peter@initech.com', phoneNumber: null, userId: null, resolutionMessage: null, workspaceId: 1234 },
];

let ordersCalls = 0;
const send = (res, status, body) => {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(text);
};

export function startDemoApi(port = Number(process.env.DEMO_API_PORT ?? 8765)) {
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const url = new URL(req.url, 'http://demo');
      if (url.pathname.startsWith('/v0/')) {
        if (req.headers.authorization !== USER_AUTH) return send(res, 401, { error: 'bad credentials' });
        if (url.pathname === '/v0/health-check') return send(res, 200, { ok: true });
        if (url.pathname === '/v0/users' && req.method === 'GET') return send(res, 200, PEOPLE[url.searchParams.get('email')]?.records ?? []);
        if (url.pathname === '/v0/identifiers/get-phone') {
          const p = PEOPLE[url.searchParams.get('email')];
          return send(res, 200, p ? [{ primary_phone_number: p.phone }] : []);
        }
        const email = raw ? JSON.parse(raw).email : undefined;
        if (url.pathname === '/v0/users' && req.method === 'DELETE') return send(res, PEOPLE[email] ? 200 : 404, {});
        if (url.pathname === '/v0/users/optout' && req.method === 'PUT') return send(res, PEOPLE[email] ? 200 : 404, {});
      }
      if (url.pathname.startsWith('/orders')) {
        if (req.headers['x-api-key'] !== ORDERS_KEY) return send(res, 403, { error: 'bad key' });
        if (url.pathname === '/orders/health') return send(res, 200, { ok: true });
        if (url.pathname === '/orders' && req.method === 'GET') {
          // The first call of each run answers 503 once, to show a retry.
          if (ordersCalls++ === 0) return send(res, 503, { error: 'warming up' });
          return send(res, 200, PEOPLE[url.searchParams.get('customer_email')]?.orders ?? []);
        }
        if (url.pathname === '/orders/erase') return send(res, 202, {});
      }
      if (url.pathname.startsWith('/dastra/v1/ws/1234/DataSubjectRequests')) {
        if (req.headers.authorization !== DASTRA_AUTH) return send(res, 401, { error: 'unauthorized' });
        const id = Number(url.pathname.split('/')[6]);
        if (!id && req.method === 'GET') {
          const states = url.searchParams.getAll('states');
          const items = DSRS.filter((d) => !states.length || states.includes(d.state));
          return send(res, 200, { items, total: items.length, size: Number(url.searchParams.get('size') ?? 100), page: Number(url.searchParams.get('page') ?? 1) });
        }
        const i = DSRS.findIndex((d) => d.id === id);
        if (i < 0) return send(res, 404, { error: 'not found' });
        if (req.method === 'GET') return send(res, 200, DSRS[i]);
        if (req.method === 'PUT') {
          DSRS[i] = JSON.parse(raw);
          console.error(`  (demo API: Dastra request ${id} updated: state ${DSRS[i].state}, resolutionMessage "${String(DSRS[i].resolutionMessage).slice(0, 60)}…")`);
          return send(res, 200, DSRS[i]);
        }
      }
      if (url.pathname.startsWith('/support')) {
        if (url.pathname === '/support/oauth/token' && req.method === 'POST') {
          const form = new URLSearchParams(raw);
          if (form.get('grant_type') !== 'client_credentials' || form.get('client_id') !== SUPPORT_CLIENT.id || form.get('client_secret') !== SUPPORT_CLIENT.secret) {
            return send(res, 401, { error: 'invalid_client' });
          }
          const token = randomBytes(16).toString('hex');
          supportTokens.add(token);
          console.error('  (demo API: Support Desk issued an access token, expires_in 3600)');
          return send(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 3600 });
        }
        if (!supportTokens.has((req.headers.authorization ?? '').replace(/^Bearer /, ''))) return send(res, 401, { error: 'invalid_token' });
        if (url.pathname === '/support/health') return send(res, 200, { ok: true });
        if (url.pathname === '/support/tickets') {
          const all = TICKETS[url.searchParams.get('requester')] ?? [];
          const page = Number(url.searchParams.get('page'));
          const size = Number(url.searchParams.get('per_page'));
          console.error(`  (demo API: Support Desk tickets page ${page})`);
          return send(res, 200, { data: all.slice((page - 1) * size, page * size), meta: { page, total: all.length } });
        }
        if (url.pathname === '/support/requesters/erase') return send(res, 200, { status: 'erased' });
      }
      send(res, 404, { error: 'not found' });
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startDemoApi();
  console.error(`demo API listening on http://127.0.0.1:${server.address().port}`);
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
