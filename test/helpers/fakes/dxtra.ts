/**
 * A fake Dxtra (seed 000): `POST /v1/signin/pat` turns a personal access token into a Hasura JWT
 * (Nhost-style `session`), `POST /v1/graphql` runs a small Hasura-like GraphQL subset with the
 * role from `X-Hasura-Role` (errors answered with status 200), and the REST endpoint
 * `GET /api/rest/getdatacontrollerdetails`. Serve both auth.dxtra.ai and api.dxtra.ai from it.
 */
import type http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { startTarget, json } from '../target.js';

/** One request the fake received; `role` is the Hasura role a GraphQL/REST call ran as. */
export interface FakeCall {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  body: string;
  role?: string;
}

/** A row of `dataSubjects`. */
export type DxtraSubject = { id: string; did: string; email: string; createdAt: string; updatedAt: string };
/** A row of `dataSubjectConsentFormValues`. */
export type DxtraConsentValue = { id: string; dataSubjectId: string; value: string; createdAt: string; updatedAt: string };

/** Options of {@link startDxtraFake}. */
export interface DxtraFakeOptions {
  /** The accepted personal access token. Default `pat_test_dxtra`. */
  personalAccessToken?: string;
  /** JWT lifetime (`exp` and `accessTokenExpiresIn`). Default 900 s. */
  accessTokenTtlSeconds?: number;
  /** Role used when no X-Hasura-Role is sent. Default `dataSubject` (sees only the token owner's own rows: none). */
  defaultRole?: string;
  /** Status for an expired/unknown JWT: 401 (default) or 200 with an `invalid-jwt` error, as Hasura itself answers. */
  invalidJwtStatus?: 401 | 200;
}

/** A running fake Dxtra. */
export interface DxtraFake {
  url: string;
  personalAccessToken: string;
  calls: FakeCall[];
  /** `logins`: PAT sign-ins; `graphql`: GraphQL requests. */
  counters: { logins: number; graphql: number };
  controller: { id: string; title: string };
  /** Seed a data subject with consent values; returns the subject row. */
  addPerson(email: string, consents?: string[]): DxtraSubject;
  subjects(): DxtraSubject[];
  consentValues(): DxtraConsentValue[];
  /** Every JWT issued so far stops working now. */
  expireTokens(): void;
  close(): Promise<void>;
}

type Value = null | boolean | number | string | Value[] | { [k: string]: Value } | Var;
class Var {
  constructor(readonly name: string) {}
}
type Field = { alias: string; name: string; args: Record<string, Value>; selections?: Field[] };
class GqlError extends Error {
  constructor(message: string, readonly path = '$', readonly code = 'validation-failed') {
    super(message);
  }
}

const TOKEN = /[\s,]+|#[^\n\r]*|("(?:[^"\\]|\\.)*"|\.\.\.|[{}()[\]:!$=@]|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[_A-Za-z]\w*)|(.)/gy;

/** Parse the operation to run (by name, or the only one) of a GraphQL document: its type and root fields. */
export function parseOperation(src: string, operationName?: string): { type: string; fields: Field[] } {
  const toks: string[] = [];
  for (const m of src.matchAll(TOKEN)) {
    if (m[2] !== undefined) throw new GqlError(`unexpected character ${JSON.stringify(m[2])}`, '$.query');
    if (m[1] !== undefined) toks.push(m[1]);
  }
  let i = 0;
  const peek = () => toks[i];
  const take = (want?: string) => {
    const t = toks[i++];
    if (t === undefined || (want !== undefined && t !== want)) throw new GqlError(`not a valid graphql query: expected ${want ?? 'a token'} at token ${i}`, '$.query');
    return t;
  };
  const value = (): Value => {
    const t = take();
    if (t === '$') return new Var(take());
    if (t.startsWith('"')) return JSON.parse(t) as string;
    if (/^-?\d/.test(t)) return Number(t);
    if (t === 'true' || t === 'false') return t === 'true';
    if (t === 'null') return null;
    if (t === '[') {
      const list: Value[] = [];
      while (peek() !== ']') list.push(value());
      take(']');
      return list;
    }
    if (t === '{') {
      const obj: Record<string, Value> = {};
      while (peek() !== '}') obj[take()] = (take(':'), value());
      take('}');
      return obj;
    }
    return t; // an enum value
  };
  const selectionSet = (): Field[] => {
    take('{');
    const fields: Field[] = [];
    while (peek() !== '}') {
      let name = take();
      let alias = name;
      if (peek() === ':') {
        take(':');
        name = take();
      }
      const args: Record<string, Value> = {};
      if (peek() === '(') {
        take('(');
        while (peek() !== ')') args[take()] = (take(':'), value());
        take(')');
      }
      fields.push({ alias, name, args, selections: peek() === '{' ? selectionSet() : undefined });
    }
    take('}');
    return fields;
  };
  const ops: { type: string; name?: string; fields: Field[] }[] = [];
  while (i < toks.length) {
    if (peek() === '{') ops.push({ type: 'query', fields: selectionSet() });
    else {
      const type = take();
      if (type !== 'query' && type !== 'mutation') throw new GqlError(`unsupported definition '${type}'`, '$.query');
      const name = peek() !== '(' && peek() !== '{' ? take() : undefined;
      if (peek() === '(') while (take() !== ')') continue; // variable definitions: types are not checked
      ops.push({ type, name, fields: selectionSet() });
    }
  }
  const op = operationName ? ops.find((o) => o.name === operationName) : ops.length === 1 ? ops[0] : undefined;
  if (!op) throw new GqlError(operationName ? `no such operation found in the document: "${operationName}"` : 'exactly one operation has to be present in the document when operationName is not specified');
  return op;
}

function bind(v: Value, vars: Record<string, unknown>): unknown {
  if (v instanceof Var) {
    if (vars[v.name] === undefined) throw new GqlError(`expecting a value for non-nullable variable: "${v.name}"`, '$.variableValues');
    return vars[v.name];
  }
  if (Array.isArray(v)) return v.map((x) => bind(x, vars));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, bind(x, vars)]));
  return v;
}

/** Start a fake Dxtra on 127.0.0.1:0. */
export async function startDxtraFake(opts: DxtraFakeOptions = {}): Promise<DxtraFake> {
  const pat = opts.personalAccessToken ?? 'pat_test_dxtra';
  const ttl = opts.accessTokenTtlSeconds ?? 900;
  const key = randomBytes(32);
  const ownerId = randomUUID();
  const revoked = new Set<string>();
  const issued: string[] = [];
  const calls: FakeCall[] = [];
  const counters = { logins: 0, graphql: 0 };
  const controller = { id: randomUUID(), title: 'Initech Ltd' };
  let subjects: DxtraSubject[] = [];
  let consents: DxtraConsentValue[] = [];

  type Row = Record<string, unknown>;
  interface Type { columns: string[]; rels: Record<string, [type: string, get: (r: Row) => Row | Row[] | undefined]> }
  const TYPES: Record<string, Type> = {
    dataSubjects: {
      columns: ['id', 'did', 'email', 'createdAt', 'updatedAt'],
      rels: { dataController: ['dataControllers', () => controller], dataSubjectConsentFormValues: ['dataSubjectConsentFormValues', (r) => consents.filter((c) => c.dataSubjectId === r.id) as unknown as Row[]] },
    },
    dataControllers: { columns: ['id', 'title'], rels: {} },
    dataSubjectConsentFormValues: { columns: ['id', 'value', 'createdAt', 'updatedAt'], rels: { dataSubject: ['dataSubjects', (r) => subjects.find((s) => s.id === r.dataSubjectId) as Row | undefined] } },
    dataSubjects_mutation_response: { columns: ['affected_rows'], rels: { returning: ['dataSubjects', (r) => r.returning as Row[]] } },
  };

  const matches = (row: Row, where: Record<string, any>, type: string): boolean =>
    Object.entries(where ?? {}).every(([k, cond]) => {
      if (k === '_and') return (cond as Row[]).every((c) => matches(row, c, type));
      if (k === '_or') return (cond as Row[]).some((c) => matches(row, c, type));
      if (k === '_not') return !matches(row, cond, type);
      const rel = TYPES[type]!.rels[k];
      if (rel) {
        const got = rel[1](row);
        return Array.isArray(got) ? got.some((r) => matches(r, cond, rel[0])) : !!got && matches(got, cond, rel[0]);
      }
      if (!TYPES[type]!.columns.includes(k)) throw new GqlError(`field '${k}' not found in type: '${type}_bool_exp'`);
      return Object.entries(cond as Row).every(([op, want]) => {
        if (op === '_eq') return row[k] === want;
        if (op === '_neq') return row[k] !== want;
        if (op === '_in') return (want as unknown[]).includes(row[k]);
        if (op === '_is_null') return (row[k] == null) === want;
        throw new GqlError(`field '${op}' not found in type: 'String_comparison_exp'`);
      });
    });

  const project = (row: Row, sel: Field[] | undefined, type: string, path: string): Row => {
    if (!sel) throw new GqlError(`missing selection set for '${type}'`, path);
    const out: Row = {};
    for (const f of sel) {
      const t = TYPES[type]!;
      const at = `${path}.selectionSet.${f.name}`;
      if (f.name === '__typename') out[f.alias] = type;
      else if (t.columns.includes(f.name)) out[f.alias] = row[f.name] ?? null;
      else if (t.rels[f.name]) {
        const [relType, get] = t.rels[f.name]!;
        const got = get(row);
        out[f.alias] = Array.isArray(got) ? got.map((r) => project(r, f.selections, relType, at)) : got ? project(got, f.selections, relType, at) : null;
      } else throw new GqlError(`field '${f.name}' not found in type: '${type}'`, at);
    }
    return out;
  };

  const execute = (type: string, fields: Field[], vars: Record<string, unknown>, role: string, userId: string): Row => {
    const data: Row = {};
    const own = (s: DxtraSubject) => role === 'user' || (role === 'dataSubject' && s.id === userId);
    for (const f of fields) {
      const args = bind(f.args as Value, vars) as Record<string, any>;
      const at = `$.selectionSet.${f.name}`;
      const root = `${type === 'query' ? 'query' : 'mutation'}_root`;
      const allowed = role === 'anonymous' ? ['dataControllers'] : type === 'query' ? ['dataSubjects', 'dataSubject', 'dataSubjectConsentFormValues', 'dataControllers'] : role === 'user' ? ['deleteDataSubjects'] : [];
      if (!allowed.includes(f.name)) throw new GqlError(`field '${f.name}' not found in type: '${root}'`, at);
      if (f.name === 'dataControllers') data[f.alias] = [project(controller, f.selections, 'dataControllers', at)];
      else if (f.name === 'dataSubject') {
        const s = subjects.find((x) => x.id === args.id && own(x));
        data[f.alias] = s ? project(s as unknown as Row, f.selections, 'dataSubjects', at) : null;
      } else if (f.name === 'dataSubjects') {
        data[f.alias] = subjects.filter((s) => own(s) && matches(s as unknown as Row, args.where, 'dataSubjects')).map((s) => project(s as unknown as Row, f.selections, 'dataSubjects', at));
      } else if (f.name === 'dataSubjectConsentFormValues') {
        const visible = consents.filter((c) => subjects.some((s) => s.id === c.dataSubjectId && own(s)));
        data[f.alias] = visible.filter((c) => matches(c as unknown as Row, args.where, f.name)).map((c) => project(c as unknown as Row, f.selections, f.name, at));
      } else {
        if (!args.where) throw new GqlError('missing required field \'where\'', at);
        const gone = subjects.filter((s) => matches(s as unknown as Row, args.where, 'dataSubjects'));
        subjects = subjects.filter((s) => !gone.includes(s));
        consents = consents.filter((c) => subjects.some((s) => s.id === c.dataSubjectId));
        data[f.alias] = project({ affected_rows: gone.length, returning: gone }, f.selections, 'dataSubjects_mutation_response', at);
      }
    }
    return data;
  };

  const errors = (res: http.ServerResponse, status: number, e: GqlError) => json(res, status, { errors: [{ extensions: { path: e.path, code: e.code }, message: e.message }] });

  /** The role a request runs as, or undefined after answering it (bad/expired JWT, role not allowed). */
  const authorize = async (req: http.IncomingMessage, res: http.ServerResponse, call: FakeCall): Promise<{ role: string; userId: string } | undefined> => {
    const auth = req.headers.authorization;
    const wanted = req.headers['x-hasura-role'] as string | undefined;
    if (!auth) {
      call.role = 'anonymous';
      return { role: 'anonymous', userId: '' };
    }
    try {
      const { payload } = await jwtVerify(auth.replace(/^Bearer\s+/i, ''), key);
      if (revoked.has(payload.jti ?? '')) throw new Error('JWTExpired');
      const claims = payload['https://hasura.io/jwt/claims'] as Record<string, string | string[]>;
      const role = wanted ?? (claims['x-hasura-default-role'] as string);
      if (!(claims['x-hasura-allowed-roles'] as string[]).includes(role)) return void errors(res, 200, new GqlError('Your requested role is not in allowed roles', '$', 'access-denied'));
      call.role = role;
      return { role, userId: claims['x-hasura-user-id'] as string };
    } catch (err) {
      const why = (err as { code?: string }).code === 'ERR_JWT_EXPIRED' || (err as Error).message === 'JWTExpired' ? 'JWTExpired' : 'JWSError JWSInvalidSignature';
      return void errors(res, opts.invalidJwtStatus ?? 401, new GqlError(`Could not verify JWT: ${why}`, '$', 'invalid-jwt'));
    }
  };

  const target = await startTarget(async (req, res, { body }) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const call: FakeCall = { method: req.method ?? '', path: u.pathname, query: Object.fromEntries(u.searchParams), headers: req.headers, body };
    calls.push(call);
    if (call.method === 'POST' && u.pathname === '/v1/signin/pat') {
      let given: unknown;
      try {
        given = (JSON.parse(body) as { personalAccessToken?: unknown }).personalAccessToken;
      } catch {}
      if (typeof given !== 'string') return json(res, 400, { status: 400, message: '"personalAccessToken" is required', error: 'invalid-request' });
      if (given !== pat) return json(res, 401, { status: 401, message: 'Invalid or expired personal access token', error: 'invalid-pat' });
      counters.logins++;
      const jti = randomUUID();
      issued.push(jti);
      const claims = { 'x-hasura-allowed-roles': ['user', 'dataSubject'], 'x-hasura-default-role': opts.defaultRole ?? 'dataSubject', 'x-hasura-user-id': ownerId };
      const accessToken = await new SignJWT({ 'https://hasura.io/jwt/claims': claims }).setProtectedHeader({ alg: 'HS256' }).setSubject(ownerId).setJti(jti).setIssuedAt().setExpirationTime(`${ttl}s`).sign(key);
      const user = { id: ownerId, displayName: 'DSR agent', email: 'dsr-agent@initech.example', defaultRole: 'user', roles: ['user'] };
      return json(res, 200, { session: { accessToken, accessTokenExpiresIn: ttl, refreshToken: randomUUID(), refreshTokenId: randomUUID(), user }, mfa: null });
    }
    if (u.pathname === '/api/rest/getdatacontrollerdetails' && (call.method === 'GET' || call.method === 'POST')) {
      if (await authorize(req, res, call)) json(res, 200, { dataControllers: [controller] });
      return;
    }
    if (call.method !== 'POST' || u.pathname !== '/v1/graphql') return json(res, 404, { path: '$', error: 'resource does not exist', code: 'not-found' });
    counters.graphql++;
    const who = await authorize(req, res, call);
    if (!who) return;
    try {
      const doc = ((): { query?: unknown; variables?: Record<string, unknown>; operationName?: string } => {
        try {
          return JSON.parse(body);
        } catch {
          throw new GqlError('Error in $: Failed reading: not a valid json value', '$', 'invalid-json');
        }
      })();
      if (typeof doc.query !== 'string') throw new GqlError("the key 'query' was not present", '$', 'parse-failed');
      const op = parseOperation(doc.query, doc.operationName);
      json(res, 200, { data: execute(op.type, op.fields, doc.variables ?? {}, who.role, who.userId) });
    } catch (e) {
      if (!(e instanceof GqlError)) throw e;
      errors(res, 200, e);
    }
  });

  return {
    url: target.url,
    personalAccessToken: pat,
    calls,
    counters,
    controller,
    addPerson(email, values = ['newsletter: granted', 'analytics: denied']) {
      const now = new Date().toISOString();
      const s: DxtraSubject = { id: randomUUID(), did: `did:dxtra:${randomBytes(8).toString('hex')}`, email, createdAt: now, updatedAt: now };
      subjects.push(s);
      for (const value of values) consents.push({ id: randomUUID(), dataSubjectId: s.id, value: `${value} (${email})`, createdAt: now, updatedAt: now });
      return s;
    },
    subjects: () => [...subjects],
    consentValues: () => [...consents],
    expireTokens() {
      for (const jti of issued) revoked.add(jti);
    },
    close: () => target.close(),
  };
}
