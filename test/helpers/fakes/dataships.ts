/**
 * A fake Dataships API (seed 004): the `{"code","status","response"}` envelope, the Data
 * Controller API behind `Authorization: Bearer <SECRET_KEY>`, and the Data Subject API that also
 * needs a per-subject `token` header issued by `POST /subject/token` (form field `email`, 1 h).
 */
import type http from 'node:http';
import { randomBytes } from 'node:crypto';
import { startTarget, json } from '../target.js';

/** One request the fake received; `subject` is the email the `token` header was issued for. */
export interface FakeCall {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  body: string;
  subject?: string;
}

/** A data field with its value (the seed's DATA OBJECT). */
export interface DatashipsField {
  id: string;
  name: string | null;
  field_name: string;
  display_name: string;
  data_type: string;
  is_default: string;
  purpose: string | null;
  field_description: string;
  field_header: string | null;
  sort_index: string | null;
  is_required: string;
  value: string | null;
}

/** What Dataships holds on one data subject. */
export interface DatashipsPerson {
  /** Integration id → data fields. */
  data: Record<string, DatashipsField[]>;
  /** Custom table rows keyed by column_name (`id`, `date`, `c_…`). */
  rows: Record<string, string>[];
  /** The seed's DOCUMENT OBJECTs. */
  documents: { id: number; key: string; data: Record<string, unknown>; created_at: number; updated_at: number }[];
  /** Erasure requests received for this subject. */
  erasureRequests: number;
}

/** Options of {@link startDatashipsFake}. */
export interface DatashipsFakeOptions {
  /** The account's SECRET_KEY. Default `sk_test_dataships`. */
  secretKey?: string;
  /** Subject token lifetime in seconds. Default 3600 (the seed's 1 hour). */
  tokenTtlSeconds?: number;
}

/** A running fake Dataships. */
export interface DatashipsFake {
  url: string;
  secretKey: string;
  calls: FakeCall[];
  /** `logins`: subject tokens issued; `erasures`: erasure requests accepted. */
  counters: { logins: number; erasures: number };
  /** The integrations of the account (`GET /controller/source/get`). */
  integrations: { id: string; name: string; display_name: string }[];
  /** Seed data for a subject (defaults derived from the email), replacing what was there. */
  addPerson(email: string, data?: Partial<Omit<DatashipsPerson, 'erasureRequests'>>): DatashipsPerson;
  person(email: string): DatashipsPerson | undefined;
  /** Every subject token issued so far expires now (later requests with them get 401). */
  expireTokens(): void;
  /** The token issued most recently for `email`. */
  tokenFor(email: string): string | undefined;
  /** Replace the answer of `GET /subject/erasure-request` (HTTP 200), e.g. a failure envelope; undefined restores success. */
  setErasureAnswer(envelope: unknown): void;
  close(): Promise<void>;
}

const COLUMNS: Record<string, string> = { date: 'Date', c_4ce0b76: 'Overdraft Allowance' };

function field(id: string, fieldName: string, displayName: string, description: string, value: string): DatashipsField {
  return {
    id, name: null, field_name: fieldName, display_name: displayName, data_type: 'text', is_default: '0', purpose: null,
    field_description: description, field_header: null, sort_index: null, is_required: '1', value,
  };
}

function defaultPerson(email: string): Omit<DatashipsPerson, 'erasureRequests'> {
  const local = email.split('@')[0] ?? email;
  const first = local.charAt(0).toUpperCase() + local.slice(1);
  return {
    data: {
      '69': [
        field('13', 'email', 'Email', 'Account Information', email),
        field('21', 'first_name', 'First Name', 'Contact Details', first),
        field('23', 'last_name', 'Last Name', 'Contact Details', `${first}son`),
      ],
      '70': [field('31', 'newsletter', 'Newsletter', 'Marketing', `subscribed:${email}`)],
    },
    rows: [{ id: '5', date: '1584037866', c_4ce0b76: `€1000 for ${first}` }],
    documents: [{ id: 9, key: randomBytes(4).toString('hex'), data: { name: `Contract of ${first}`, description: 'Employee Contract 2019', effective: 'Yes', file_size_bytes: 31709 }, created_at: 1584622125, updated_at: 1584622125 }],
  };
}

/** Form fields of a body sent as application/x-www-form-urlencoded or multipart/form-data (curl -F). */
export function formFields(contentType: string | undefined, body: string): Record<string, string> {
  const boundary = /^multipart\/form-data;.*boundary="?([^";]+)"?/i.exec(contentType ?? '')?.[1];
  if (!boundary) return Object.fromEntries(new URLSearchParams(body));
  const out: Record<string, string> = {};
  for (const part of body.split(`--${boundary}`)) {
    const [head, ...rest] = part.split('\r\n\r\n');
    const name = /name="([^"]*)"/i.exec(head ?? '')?.[1];
    if (name !== undefined && rest.length) out[name] = rest.join('\r\n\r\n').replace(/\r\n$/, '');
  }
  return out;
}

/** Start a fake Dataships on 127.0.0.1:0. */
export async function startDatashipsFake(opts: DatashipsFakeOptions = {}): Promise<DatashipsFake> {
  const secretKey = opts.secretKey ?? 'sk_test_dataships';
  const ttl = opts.tokenTtlSeconds ?? 3600;
  const people = new Map<string, DatashipsPerson>();
  const tokens = new Map<string, { email: string; expiresAt: number }>();
  const latest = new Map<string, string>();
  const calls: FakeCall[] = [];
  const counters = { logins: 0, erasures: 0 };
  const integrations = [
    { id: '69', name: 'dataships', display_name: 'Dataships' },
    { id: '70', name: 'mailchimp', display_name: 'Mailchimp' },
  ];
  let erasureAnswer: unknown;

  const ok = (res: http.ServerResponse, response: unknown) => json(res, 200, { code: 200, status: 'success', response });
  const fail = (res: http.ServerResponse, code: number, message: string) => json(res, code, { code, status: 'error', response: { message } });

  const target = await startTarget((req, res, { body }) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const call: FakeCall = { method: req.method ?? '', path: u.pathname, query: Object.fromEntries(u.searchParams), headers: req.headers, body };
    calls.push(call);
    const route = `${call.method} ${u.pathname}`;
    if (route === 'GET /controller/policy') {
      return req.headers['x-api-key'] ? ok(res, [{ id: 1, name: 'privacy-policy', display_name: 'Privacy Policy' }]) : fail(res, 401, 'No valid API key provided.');
    }
    if (req.headers.authorization !== `Bearer ${secretKey}`) return fail(res, 401, 'No valid Secret key provided.');
    if (route === 'GET /controller/detail') return ok(res, ['public_key', 'company_name', 'contact_details', 'period', 'referrer', 'legal_basis', 'recipients', 'logo', 'lightcolor', 'darkcolor']);
    if (route === 'GET /controller/detail/get') return ok(res, { public_key: 'pk_test_dataships', company_name: 'Initech', contact_details: 'dpo@initech.example', period: 'For as long as your customers consent' });
    if (route === 'GET /controller/source/get') return ok(res, integrations.map((i) => ({ ...i, access: ['read', 'write', 'update', 'delete'], integration_name: null })));
    if (route === 'POST /subject/token') {
      const email = formFields(req.headers['content-type'], body).email;
      if (!email) return fail(res, 400, 'The email field is required.');
      const token = randomBytes(16).toString('hex');
      const expiresAt = Math.floor(Date.now() / 1000) + ttl;
      tokens.set(token, { email, expiresAt });
      latest.set(email, token);
      counters.logins++;
      return ok(res, { token, expires_at: expiresAt });
    }
    if (!u.pathname.startsWith('/subject/')) return fail(res, 404, 'The requested resource does not exist.');
    const header = req.headers.token;
    const issued = typeof header === 'string' ? tokens.get(header.trim()) : undefined;
    if (!issued || issued.expiresAt <= Date.now() / 1000) return fail(res, 401, 'Token is missing, invalid or expired.');
    call.subject = issued.email;
    const person = people.get(issued.email);
    const data = /^\/subject\/data\/([^/]+)$/.exec(u.pathname);
    if (data && call.method === 'POST') {
      if (!integrations.some((i) => i.id === data[1])) return fail(res, 404, 'Integration not found.');
      return ok(res, person?.data[data[1]!] ?? []);
    }
    if (route === 'GET /subject/table/get') {
      const named = u.searchParams.get('display_name') === '1';
      const rows = (person?.rows ?? []).map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [named ? (COLUMNS[k] ?? k) : k, v])));
      return ok(res, rows);
    }
    if (route === 'GET /subject/document') return ok(res, person?.documents ?? []);
    if (route === 'GET /subject/erasure-request') {
      if (erasureAnswer !== undefined) return json(res, 200, erasureAnswer);
      counters.erasures++;
      if (person) person.erasureRequests++;
      return ok(res, true);
    }
    return fail(res, 404, 'The requested resource does not exist.');
  });

  return {
    url: target.url,
    secretKey,
    calls,
    counters,
    integrations,
    addPerson(email, data = {}) {
      const person: DatashipsPerson = { ...defaultPerson(email), ...data, erasureRequests: 0 };
      people.set(email, person);
      return person;
    },
    person: (email) => people.get(email),
    expireTokens() {
      for (const t of tokens.values()) t.expiresAt = 0;
    },
    tokenFor: (email) => latest.get(email),
    setErasureAnswer(envelope) {
      erasureAnswer = envelope;
    },
    close: () => target.close(),
  };
}
