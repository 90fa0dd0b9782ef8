/**
 * A fake Dastra data subject request API (seed 002), one workspace:
 * - `GET  /v1/ws/{ws}/DataSubjectRequests` — paged `{items, total, size, page}` (pages from 1, by id
 *   ascending, archived requests left out unless `archived=true`), filtered by `states` and
 *   `purposes` given as repeated query keys (`states=Open&states=Processing`); an unknown state or
 *   purpose is a 400, as an ASP.NET enum binder answers;
 * - `GET  /v1/ws/{ws}/DataSubjectRequests/{id}` — one request, 404 when absent;
 * - `PUT  /v1/ws/{ws}/DataSubjectRequests/{id}` — the complete object, which REPLACES the stored
 *   one; 400 when a top-level field of the seed's request object is missing, the id differs from
 *   the path, or a state/purpose is not one the seed lists;
 * - `POST /v1/ws/{ws}/DataSubjectRequests` — create, the id assigned.
 * Auth: `Authorization: Basic base64(publicKey:privateKey)` (the seed is silent; Dastra's API keys
 * are a public/private pair), else 401. Faults are scripted per route and answered before auth.
 */
import type http from 'node:http';
import { startTarget, json } from '../target.js';

/** The routes of the fake, as counted and faulted. */
export type DastraRoute = 'list' | 'read' | 'update' | 'create';

/** One request the fake received. */
export interface DastraCall {
  route: DastraRoute | 'other';
  method: string;
  path: string;
  /** The query string's parameters, repeated keys kept. */
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A scripted answer: status, then a JSON (or raw string) body and headers. */
export interface DastraFault {
  status: number;
  /** Sent as JSON unless a string (sent as it is). Default: a problem-details object. */
  body?: unknown;
  headers?: http.OutgoingHttpHeaders;
  /** Sets Retry-After (seconds). */
  retryAfter?: number;
}

/** A stored data subject request (the seed's object; any JSON). */
export type DastraRequest = Record<string, unknown> & { id: number };

/** Options of {@link startDastraFake}. */
export interface DastraFakeOptions {
  workspaceId?: string;
  /** Default `pk_test_dastra`. */
  publicKey?: string;
  /** Default `sk_test_dastra`. */
  privateKey?: string;
  /** `size` when none is asked. Default 20. */
  defaultPageSize?: number;
  /** Larger `size`s are capped to this (and the cap is echoed in `size`). Default 1000. */
  maxPageSize?: number;
}

/** A running fake Dastra. */
export interface DastraFake {
  url: string;
  workspaceId: string;
  /** The Authorization header value that the fake accepts. */
  authorization: string;
  calls: DastraCall[];
  /** Calls received on a route (faulted and refused ones included). */
  count(route: DastraRoute): number;
  /** Store a request: the seed's object with `fields` over it (id assigned when not given). */
  addRequest(fields?: Partial<DastraRequest>): DastraRequest;
  /** Store `n` requests, the i-th (0-based) with `fields(i)` over the template. */
  addRequests(n: number, fields?: (i: number) => Partial<DastraRequest>): void;
  /** The stored object (what the last PUT left). */
  request(id: number): DastraRequest | undefined;
  /** The next calls of `route` get these answers, in order; later calls behave normally. */
  fault(route: DastraRoute, ...answers: DastraFault[]): void;
  close(): Promise<void>;
}

/** States and purposes the seed lists. */
export const STATES = ['Open', 'IdentityValidation', 'Processing', 'Active', 'Closed'];
export const PURPOSES = ['Unknown', 'Information', 'Access', 'Rectification', 'Erasure', 'Restriction', 'Opposition', 'Portability', 'AdvanceDirectives', 'AutomatedDecision'];

const DATE = '2022-08-31T13:29:26.246Z';
const user = (id: number) => ({ id, displayName: `Operator ${id}`, familyName: 'Lumbergh', givenName: 'Bill', email: `operator${id}@initech.example`, color: '#336699', avatarUrl: null, tenantId: 7 });
const actor = (id: number, role: string) => ({
  id, displayName: `${role} of Initech`, dateCreation: DATE, dateUpdate: DATE, logoUrl: null, actorType: 'Physical', vendorType: 'B2B', accessLevel: 'None',
  givenName: 'Joanna', familyName: 'Smith', companyName: 'Initech', description: role, countryCode: 'FR', readonly: true, email: `${role.toLowerCase()}@initech.example`,
  phoneNumber: '+33100000000', contactName: 'Joanna Smith', contactPosition: role, immatriculationNumber: '552 100 554', websiteUrl: 'https://initech.example',
  address: '1 rue de la Paix', zipCode: '75002', city: 'Paris',
});

/** The top-level fields of the seed's request object (create/update body). A PUT missing one is refused. */
export const REQUIRED_FIELDS = [
  'id', 'title', 'locale', 'archived', 'archivedDate', 'personCategory', 'complex', 'dateClosed', 'areaId', 'state', 'description', 'message',
  'resolutionMessage', 'email', 'phoneNumber', 'givenName', 'familyName', 'dateCreation', 'dateUpdate', 'workFlowStep', 'workFlowStepId', 'channel',
  'refId', 'userId', 'purposes', 'closedReason', 'closedReasonDescription', 'expiryTime', 'address', 'zipCode', 'city', 'countryCode', 'nbMessages',
  'nbMessagesNotViewed', 'remainingDays', 'closingTime', 'additionalDatas', 'userNotified', 'dateUserNotified', 'sendNotification',
  'emailValidationDate', 'mailValidated', 'referrerUrl', 'demandId', 'identityValidated', 'dateIdentityValidated', 'widgetId',
];

/** The seed's full request object for `id`, with plausible values. */
export function dastraRequest(id: number, fields: Partial<DastraRequest> = {}): DastraRequest {
  return {
    closedByUser: null,
    area: {
      order: 0, children: [], teams: [{ id: 3, label: 'Privacy', ref: 'PRV', areas: [11], users: [21, 22] }], id: 11, type: 'Entity', parentId: null,
      ref: 'INI', label: 'Initech SAS', description: 'Main entity', logoUrl: null, address: '1 rue de la Paix', zipCode: '75002', city: 'Paris',
      countryCode: 'FRA', immatriculationNumber: '552 100 554', phoneNumber: '+33100000000', mailAddress: 'privacy@initech.example',
      dpo: actor(31, 'DPO'), referent: actor(32, 'Referent'), representative: actor(33, 'Representative'),
      dataProtectionAuthority: { id: 1, label: 'CNIL', siteURL: 'https://www.cnil.fr', phoneNumber: '+33153732222', email: 'contact@cnil.example', countryCode: 'FRA', address: '3 place de Fontenoy', city: 'Paris', zipCode: '75007' },
    },
    creator: user(21),
    operator: user(22),
    operatorId: 22,
    attachments: [],
    tags: [{ id: 5, label: 'web', type: 'DataProcessing', color: '#ff9900' }],
    id,
    title: `Request ${id}`,
    locale: 'fr',
    archived: false,
    archivedDate: null,
    personCategory: 'Prospect',
    complex: false,
    dateClosed: null,
    areaId: 11,
    state: 'Open',
    description: '',
    message: 'Please send me my data.',
    resolutionMessage: null,
    email: `subject${id}@example.com`,
    phoneNumber: null,
    givenName: 'Peter',
    familyName: 'Gibbons',
    dateCreation: DATE,
    dateUpdate: DATE,
    workFlowStep: { id: 2, label: 'To do', color: '#cccccc', order: 0, itemLimit: 0, type: 'DataSubject', finalStep: false, initialStep: true, descriptionHtml: '', mappedState: 'Open' },
    workFlowStepId: 2,
    channel: 'Internal',
    refId: `REF-${id}`,
    userId: null,
    purposes: ['Access'],
    closedReason: 'None',
    closedReasonDescription: null,
    expiryTime: '2022-09-30T13:29:26.246Z',
    address: null,
    zipCode: null,
    city: null,
    countryCode: 'FR',
    nbMessages: 1,
    nbMessagesNotViewed: 0,
    remainingDays: 30,
    closingTime: 0,
    additionalDatas: '{}',
    userNotified: false,
    dateUserNotified: null,
    sendNotification: true,
    emailValidationDate: DATE,
    mailValidated: true,
    referrerUrl: 'https://initech.example/privacy',
    demandId: `D-${id}`,
    identityValidated: true,
    dateIdentityValidated: DATE,
    widgetId: 4,
    ...fields,
  } as DastraRequest;
}

const problem = (status: number, title: string, errors?: Record<string, string[]>) => ({ type: 'https://tools.ietf.org/html/rfc7231', title, status, ...(errors ? { errors } : {}) });

/** Start a fake Dastra on 127.0.0.1:0. */
export async function startDastraFake(opts: DastraFakeOptions = {}): Promise<DastraFake> {
  const workspaceId = opts.workspaceId ?? '1234';
  const authorization = `Basic ${Buffer.from(`${opts.publicKey ?? 'pk_test_dastra'}:${opts.privateKey ?? 'sk_test_dastra'}`).toString('base64')}`;
  const defaultSize = opts.defaultPageSize ?? 20;
  const maxSize = opts.maxPageSize ?? 1000;
  const store = new Map<number, DastraRequest>();
  let sorted: DastraRequest[] | undefined;
  let nextId = 1;
  const calls: DastraCall[] = [];
  const counts: Record<DastraRoute, number> = { list: 0, read: 0, update: 0, create: 0 };
  const faults: Record<DastraRoute, DastraFault[]> = { list: [], read: [], update: [], create: [] };
  const prefix = `/v1/ws/${workspaceId}/DataSubjectRequests`;

  const put = (r: DastraRequest) => {
    // Stored as JSON round-trips it, as a database would: no aliasing with the caller's object, and
    // no lazily flattened strings whose flattening during a listing would look like client memory.
    const stored = JSON.parse(JSON.stringify(r)) as DastraRequest;
    store.set(stored.id, stored);
    nextId = Math.max(nextId, stored.id + 1);
    sorted = undefined;
    return stored;
  };

  const target = await startTarget((req, res, { body }) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(u.pathname);
    const one = path.startsWith(`${prefix}/`) ? path.slice(prefix.length + 1) : undefined;
    const route: DastraRoute | 'other' =
      path === prefix && req.method === 'GET' ? 'list'
        : path === prefix && req.method === 'POST' ? 'create'
          : one !== undefined && req.method === 'GET' ? 'read'
            : one !== undefined && req.method === 'PUT' ? 'update'
              : 'other';
    calls.push({ route, method: req.method ?? '', path, query: u.searchParams, headers: req.headers, body });
    if (route === 'other') return json(res, 404, problem(404, 'Not Found'));
    counts[route]++;
    const fault = faults[route].shift();
    if (fault) {
      const headers = { ...(fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {}), ...fault.headers };
      if (typeof fault.body === 'string') {
        res.writeHead(fault.status, { 'content-type': 'application/json', ...headers });
        res.end(fault.body);
        return;
      }
      return json(res, fault.status, fault.body ?? problem(fault.status, 'Scripted fault'), headers);
    }
    if (req.headers.authorization !== authorization) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="Dastra"', 'content-length': 0 });
      res.end();
      return;
    }

    if (route === 'list') {
      const states = u.searchParams.getAll('states');
      const purposes = u.searchParams.getAll('purposes');
      const bad = [...states.filter((s) => !STATES.includes(s)), ...purposes.filter((p) => !PURPOSES.includes(p))];
      if (bad.length) return json(res, 400, problem(400, 'One or more validation errors occurred.', { query: [`invalid value(s): ${bad.join(', ')}`] }));
      const page = u.searchParams.has('page') ? Number(u.searchParams.get('page')) : 1;
      const asked = u.searchParams.has('size') ? Number(u.searchParams.get('size')) : defaultSize;
      if (!Number.isInteger(page) || page < 1 || !Number.isInteger(asked) || asked < 1) return json(res, 400, problem(400, 'Invalid page or size'));
      const size = Math.min(asked, maxSize);
      const archived = u.searchParams.get('archived') === 'true';
      sorted ??= [...store.values()].sort((a, b) => a.id - b.id);
      const matching = sorted.filter((r) =>
        (r.archived === true) === archived
        && (states.length === 0 || states.includes(r.state as string))
        && (purposes.length === 0 || (Array.isArray(r.purposes) && r.purposes.some((p) => purposes.includes(p as string)))));
      return json(res, 200, { items: matching.slice((page - 1) * size, page * size), total: matching.length, size, page });
    }
    if (route === 'create') {
      let value: unknown;
      try {
        value = JSON.parse(body);
      } catch {
        return json(res, 400, problem(400, 'The request body is not valid JSON.'));
      }
      return json(res, 200, put(dastraRequest(nextId, { ...(value as object), id: nextId })));
    }
    const id = Number(one);
    const stored = Number.isInteger(id) ? store.get(id) : undefined;
    if (!stored) return json(res, 404, problem(404, 'Not Found'));
    if (route === 'read') return json(res, 200, stored);

    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      return json(res, 400, problem(400, 'The request body is not valid JSON.'));
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return json(res, 400, problem(400, 'The dataSubjectRequest field is required.'));
    const next = value as Record<string, unknown>;
    const missing = REQUIRED_FIELDS.filter((f) => !(f in next));
    if (missing.length) return json(res, 400, problem(400, 'One or more validation errors occurred.', Object.fromEntries(missing.map((f) => [f, [`The ${f} field is required.`]]))));
    if (next.id !== id) return json(res, 400, problem(400, 'The id of the body does not match the id of the route.'));
    if (!STATES.includes(next.state as string)) return json(res, 400, problem(400, 'One or more validation errors occurred.', { state: ['Invalid state.'] }));
    if (!Array.isArray(next.purposes) || next.purposes.some((p) => !PURPOSES.includes(p as string))) {
      return json(res, 400, problem(400, 'One or more validation errors occurred.', { purposes: ['Invalid purposes.'] }));
    }
    return json(res, 200, put(next as DastraRequest));
  });

  return {
    url: target.url,
    workspaceId,
    authorization,
    calls,
    count: (route) => counts[route],
    addRequest: (fields = {}) => put(dastraRequest(fields.id ?? nextId, fields)),
    addRequests(n, fields) {
      for (let i = 0; i < n; i++) {
        const f = fields?.(i) ?? {};
        put(dastraRequest(f.id ?? nextId, f));
      }
    },
    request: (id) => store.get(id),
    fault(route, ...answers) {
      faults[route].push(...answers);
    },
    close: () => target.close(),
  };
}
