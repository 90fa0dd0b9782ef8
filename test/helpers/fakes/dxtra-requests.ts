/**
 * The fake Dxtra (./dxtra.ts) extended with data subject rights requests, for the Dxtra request
 * source (config/recipes/dxtra-source.json): `GET|POST /api/rest/getdatasubjectsrightsrequests`
 * (the REST endpoint seed 000 lists) answering `{"dataSubjectsRightsRequests": [...]}`, and the
 * GraphQL mutation `updateDataSubjectsRightsRequest(pk_columns: {id}, _set: {status, notes})`.
 * The seed shows neither the rows nor the mutation: both are the recipe's assumptions.
 *
 * A front server handles those two and passes everything else (PAT sign-in, other GraphQL, other
 * REST) to the fake Dxtra as it is. The JWT and role of a request are checked by asking the fake
 * Dxtra itself (`getdatacontrollerdetails` with the same headers), so both share one auth.
 */
import type http from 'node:http';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { startTarget, json } from '../target.js';
import { parseOperation, startDxtraFake, type DxtraFake, type DxtraFakeOptions, type FakeCall } from './dxtra.js';

/** A row of `dataSubjectsRightsRequests`. */
export interface DxtraRightsRequest {
  id: string;
  /** Dxtra's request type: access, export, erasure, rectify, restrict, object, noSale. */
  requestType: string;
  /** submitted, verified, review, completed… */
  status: string;
  notes: string | null;
  createdAt: string;
  /** The subject's row id in the fake Dxtra, or null (a request with no data subject attached). */
  dataSubjectId: string | null;
}

/** A running fake Dxtra with rights requests. */
export interface DxtraRequestsFake {
  url: string;
  /** The fake Dxtra behind (sign-ins, subjects, its own calls). */
  inner: DxtraFake;
  /** Calls the front server handled itself (the REST list and the mutation). */
  calls: FakeCall[];
  counters: { list: number; finish: number };
  /** Add a request; an email makes (or reuses) the data subject in the fake Dxtra. */
  addRequest(r: { requestType: string; status?: string; email?: string | null; id?: string }): DxtraRightsRequest;
  requests(): DxtraRightsRequest[];
  close(): Promise<void>;
}

const MUTATION = 'updateDataSubjectsRightsRequest';
const COLUMNS = ['id', 'requestType', 'status', 'notes', 'createdAt'];
const SET_COLUMNS = ['status', 'notes'];
const HOP_BY_HOP = new Set(['host', 'connection', 'content-length', 'keep-alive', 'transfer-encoding']);

/** A parsed GraphQL value with its variables filled (variables are objects carrying only `name`). */
function bind(v: unknown, vars: Record<string, unknown>): unknown {
  if (Array.isArray(v)) return v.map((x) => bind(x, vars));
  if (v && typeof v === 'object') {
    if (Object.getPrototypeOf(v) !== Object.prototype && typeof (v as { name?: unknown }).name === 'string') return vars[(v as { name: string }).name];
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, bind(x, vars)]));
  }
  return v;
}

/** Start the fake on 127.0.0.1:0. */
export async function startDxtraRequestsFake(opts: DxtraFakeOptions = {}): Promise<DxtraRequestsFake> {
  const inner = await startDxtraFake(opts);
  const rows: DxtraRightsRequest[] = [];
  const calls: FakeCall[] = [];
  const counters = { list: 0, finish: 0 };

  const subjectOf = (r: DxtraRightsRequest) => inner.subjects().find((s) => s.id === r.dataSubjectId);
  const project = (r: DxtraRightsRequest) => {
    const s = subjectOf(r);
    return { id: r.id, requestType: r.requestType, status: r.status, notes: r.notes, createdAt: r.createdAt, dataSubject: s ? { id: s.id, did: s.did, email: s.email } : null };
  };

  /** The role of a request as the fake Dxtra sees it, or the answer it gave (bad JWT, role refused). */
  async function authorize(req: http.IncomingMessage): Promise<{ role: string } | { status: number; body: unknown }> {
    if (!req.headers.authorization) return { role: 'anonymous' };
    const headers: Record<string, string> = { authorization: req.headers.authorization };
    if (typeof req.headers['x-hasura-role'] === 'string') headers['x-hasura-role'] = req.headers['x-hasura-role'];
    const probe = await request(`${inner.url}/api/rest/getdatacontrollerdetails`, { headers });
    const body = (await probe.body.json()) as { errors?: unknown };
    if (probe.statusCode !== 200 || body.errors) return { status: probe.statusCode, body };
    return { role: headers['x-hasura-role'] ?? opts.defaultRole ?? 'dataSubject' };
  }

  async function forward(req: http.IncomingMessage, res: http.ServerResponse, body: string): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !HOP_BY_HOP.has(k)) headers[k] = v;
    const method = req.method ?? 'GET';
    const r = await request(`${inner.url}${req.url ?? '/'}`, { method: method as 'GET', headers, body: method === 'GET' || method === 'HEAD' ? undefined : body });
    const text = await r.body.text();
    res.writeHead(r.statusCode, { 'content-type': String(r.headers['content-type'] ?? 'application/json') });
    res.end(text);
  }

  const gqlError = (res: http.ServerResponse, message: string, code = 'validation-failed') => json(res, 200, { errors: [{ extensions: { path: '$', code }, message }] });

  const target = await startTarget(async (req, res, { body }) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/api/rest/getdatasubjectsrightsrequests' && (req.method === 'GET' || req.method === 'POST')) {
      const call: FakeCall = { method: req.method, path: u.pathname, query: Object.fromEntries(u.searchParams), headers: req.headers, body };
      calls.push(call);
      counters.list++;
      const who = await authorize(req);
      if ('status' in who) return json(res, who.status === 200 ? 400 : who.status, who.body);
      call.role = who.role;
      if (who.role === 'anonymous') return json(res, 400, { path: '$', error: "field 'dataSubjectsRightsRequests' not found in type: 'query_root'", code: 'validation-failed' });
      // The dataSubject role sees its own requests only; the PAT's owner is no data subject: none.
      return json(res, 200, { dataSubjectsRightsRequests: who.role === 'user' ? rows.map(project) : [] });
    }
    if (req.method === 'POST' && u.pathname === '/v1/graphql') {
      let doc: { query?: unknown; variables?: Record<string, unknown>; operationName?: string } | undefined;
      let op: ReturnType<typeof parseOperation> | undefined;
      try {
        doc = JSON.parse(body);
        op = typeof doc?.query === 'string' ? parseOperation(doc.query, doc.operationName) : undefined;
      } catch {
        op = undefined;
      }
      if (!op || op.type !== 'mutation' || !op.fields.some((f) => f.name === MUTATION)) return forward(req, res, body);
      const call: FakeCall = { method: 'POST', path: u.pathname, query: {}, headers: req.headers, body };
      calls.push(call);
      counters.finish++;
      const who = await authorize(req);
      if ('status' in who) return json(res, who.status, who.body);
      call.role = who.role;
      if (who.role !== 'user') return gqlError(res, `field '${MUTATION}' not found in type: 'mutation_root'`);
      const data: Record<string, unknown> = {};
      for (const f of op.fields) {
        if (f.name !== MUTATION) return gqlError(res, `field '${f.name}' not found in type: 'mutation_root'`);
        const args = bind(f.args, doc?.variables ?? {}) as { pk_columns?: { id?: unknown }; _set?: Record<string, unknown> };
        if (!args.pk_columns || args.pk_columns.id === undefined) return gqlError(res, "missing required field 'pk_columns'");
        for (const k of Object.keys(args._set ?? {})) {
          if (!SET_COLUMNS.includes(k)) return gqlError(res, `field '${k}' not found in type: 'dataSubjectsRightsRequests_set_input'`);
        }
        const row = rows.find((r) => r.id === args.pk_columns!.id);
        if (row) Object.assign(row, args._set ?? {});
        const sel = f.selections ?? [];
        for (const s of sel) if (!COLUMNS.includes(s.name)) return gqlError(res, `field '${s.name}' not found in type: 'dataSubjectsRightsRequests'`);
        data[f.alias] = row ? Object.fromEntries(sel.map((s) => [s.alias, (row as unknown as Record<string, unknown>)[s.name] ?? null])) : null;
      }
      return json(res, 200, { data });
    }
    return forward(req, res, body);
  });

  return {
    url: target.url,
    inner,
    calls,
    counters,
    addRequest(r) {
      let dataSubjectId: string | null = null;
      if (r.email) dataSubjectId = (inner.subjects().find((s) => s.email === r.email) ?? inner.addPerson(r.email)).id;
      const row: DxtraRightsRequest = { id: r.id ?? randomUUID(), requestType: r.requestType, status: r.status ?? 'verified', notes: null, createdAt: new Date().toISOString(), dataSubjectId };
      rows.push(row);
      return row;
    },
    requests: () => rows.map((r) => ({ ...r })),
    close: async () => {
      await target.close();
      await inner.close();
    },
  };
}
