/**
 * The declarative HTTP request source (`"type": "HTTP"`): a privacy platform described in the
 * config instead of code. `options.list` is an APIProxy query listing the pending requests (with
 * `records`, `paginate`, `graphql`, `expect` as in a connection's queries), `options.fields` maps
 * JSON pointers in each record to the request id, the job type and the identifiers,
 * `options.finish` is an APIProxy query recording the outcome, and `options.tokens` logs in first
 * (the same `tokens` as a connection's).
 *
 * Nothing here sends HTTP itself: the queries are normalised and checked exactly as a connection's
 * (a synthetic one-connection config through {@link validateConfig}) and run through the engine's
 * query path ({@link runQuery}, {@link fetchToken}, {@link makeTokenScope}), so templates,
 * encoding, retries, pages, GraphQL errors, `expect` and "401 means log in again" behave as they
 * do for a connection.
 *
 * The finish query's templates may use, besides the source's secret keys and tokens:
 * `{request_id}` (the request's id), `{job_id}` (the ids of the request's jobs, comma-separated;
 * empty for an attention write-back), `{job_status}` (`succeeded` when every job succeeded,
 * `failed` when every job failed, else `partial`; `attention` for a request that could not run)
 * and `{summary}` (the text of {@link summarize}: ids, types, statuses, counts and storage, never
 * data or identifiers). These values come from outside the config, so they are encoded where they
 * land like identifiers. No identifier of the request is ever a template value of `finish`.
 *
 * Dxtra (config/recipes/dxtra-source.json): the list is the REST endpoint
 * `GET /api/rest/getdatasubjectsrightsrequests` its API overview (seed 000) lists. The seed shows
 * neither the fields of a rights request nor a mutation for it: the record fields (`id`,
 * `requestType`, `status`, `dataSubject.email`), their values and the finish mutation
 * `updateDataSubjectsRightsRequest(pk_columns: {id}, _set: {status, notes})` (Hasura's
 * update-by-primary-key mutation, named the way the seed names `updateDataSubjectConsentFormValue`)
 * are assumptions to check against a real Dxtra account.
 */
import { randomUUID } from 'node:crypto';
import { Agent, getGlobalDispatcher, type Dispatcher } from 'undici';
import { AgentError, ErrorCodes, isAgentError, type ConfigProblem } from '../errors.js';
import { listConfigProblems, validateConfig } from '../config/validate.js';
import { isObject, pointer, pointerSegments } from '../config/problems.js';
import { queryVariables } from '../config/query-check.js';
import { type APIProxyConnection, type APIProxyQuery, type RequestType } from '../config/types.js';
import type { Secret, SecretsCache } from '../credentials/source.js';
import { makeApiProxyRun } from '../connectors/apiproxy.js';
import { compileQuery } from '../engine/compile.js';
import type { EngineHooks } from '../engine/connection.js';
import { makeMask } from '../engine/mask.js';
import { runQuery, type ApiProxyContext, type ConnectionRun } from '../engine/query.js';
import type { RetryPolicy } from '../engine/send.js';
import { makeTokenCache, type TokenCache } from '../engine/tokens.js';
import { ABSENT, parsePointer, pointerProblem, valueAt } from '../json-pointer.js';
import { makeLogger, type Logger } from '../logger.js';
import { NAME_PATTERN } from '../names.js';
import { summarize } from './dastra.js';
import type { JobOutcome, PendingJob, PendingRequest, RequestSource } from './types.js';

/** Template variables only the finish query has. */
export const FINISH_VARIABLES = ['request_id', 'job_id', 'job_status', 'summary'] as const;
/** Default bound on one listing or one write-back, retries and logins included: 300 s. */
export const DEFAULT_HTTP_SOURCE_TIMEOUT_MS = 300 * 1000;
/** Requests read ahead of the consumer of {@link RequestSource.list} before reading pauses. */
const READ_AHEAD = 100;
const JOB_TYPES: readonly RequestType[] = ['access', 'delete', 'optout'];
const KNOWN_OPTIONS = ['list', 'fields', 'finish', 'tokens', 'eligible', 'poll_interval_seconds'];
const KNOWN_FIELDS = ['id', 'type', 'identifiers'];
/** A valid uuid for the synthetic connection the queries are checked in. */
const CHECK_UUID = '00000000-0000-4000-8000-000000000000';

/** Options of {@link makeHttpSource}. */
export interface HttpSourceOptions {
  /** The source's name in the config. */
  readonly name: string;
  /** The source's `options`, as the config writes them; checked by {@link checkHttpSourceOptions} (CONFIG_INVALID). */
  readonly options: unknown;
  /**
   * Where the source's secret is read (its keys fill the templates, e.g. a personal access token):
   * a secrets cache and the location (refreshed once after a 401/403 that a new login did not cure),
   * or the secret itself (`secret`).
   */
  readonly secrets?: SecretsCache;
  readonly credentialsLocation?: string;
  /** The secret itself, instead of `secrets` and `credentialsLocation`. */
  readonly secret?: Secret;
  /**
   * Tokens given next to `options` (a source config's own `tokens`), used when `options.tokens` is
   * absent; checked like `options.tokens`.
   */
  readonly tokens?: unknown;
  readonly retry: RetryPolicy;
  /** For queries with verify_ssl "true". Default: undici's global dispatcher. */
  readonly dispatcher?: Dispatcher;
  /** For queries with verify_ssl "false". Default: an Agent skipping certificate checks, made on first use. */
  readonly insecureDispatcher?: Dispatcher;
  /** Largest single record in a list response. Default 64 MiB. */
  readonly maxObjectBytes?: number;
  /** Bound on one listing (every page) and on one write-back, logins and retries included. Default 300 s. */
  readonly timeoutMs?: number;
  /** Shared-token store (e.g. the engine's). Default: the source's own. */
  readonly tokenCache?: TokenCache;
  /** Default: a logger that writes nothing. */
  readonly logger?: Logger;
  readonly hooks?: EngineHooks;
}

/** One problem with an HTTP source's options: the option (dotted, e.g. `list.paginate.style`) and what to do. */
export interface HttpSourceOptionProblem {
  readonly field: string;
  readonly message: string;
}

/** `options.fields` once checked. */
interface Fields {
  readonly id: readonly string[];
  readonly idText: string;
  readonly type: { readonly pointer: readonly string[]; readonly values?: Readonly<Record<string, RequestType>> };
  readonly identifiers: ReadonlyArray<readonly [name: string, at: readonly string[], text: string]>;
}

/** A RequestSource reading a platform's requests through the declarative `list`, `fields` and `finish` queries. */
export function makeHttpSource(opts: HttpSourceOptions): RequestSource {
  const { name } = opts;
  const given = opts.options;
  const both = isObject(given) && given.tokens !== undefined && opts.tokens !== undefined;
  const options = isObject(given) && given.tokens === undefined && opts.tokens !== undefined ? { ...given, tokens: opts.tokens } : given;
  const problems = [
    ...(both ? [{ field: 'tokens', message: 'tokens are given both next to options and in options; keep one' }] : []),
    ...checkHttpSourceOptions(options),
  ];
  const fixed = opts.secret;
  if (!fixed && !(opts.secrets && opts.credentialsLocation !== undefined)) throw new TypeError('makeHttpSource needs `secret`, or `secrets` and `credentialsLocation`');
  const credentialsLocation = opts.credentialsLocation ?? `source ${name}`;
  const secrets: SecretsCache = fixed ? { get: async () => fixed, invalidate: () => undefined } : opts.secrets!;
  if (problems.length > 0) {
    const n = problems.length;
    const lines = problems.map((p) => `  ${p.field || '(options)'}: ${p.message}`);
    throw new AgentError(ErrorCodes.CONFIG_INVALID, `the options of source '${name}' are invalid (${n} problem${n === 1 ? '' : 's'}):\n${lines.join('\n')}`, {
      problems: problems.map((p): ConfigProblem => ({ path: pointer('options', ...(p.field === '' ? [] : p.field.split('.'))), message: p.message })),
    });
  }
  const o = options as Record<string, unknown>;
  const checked = validateConfig(syntheticConfig(o), `source '${name}'`).connections[0] as APIProxyConnection;
  // Its own uuid: shared tokens are keyed by it, so a shared store never mixes two sources.
  const conn: APIProxyConnection = { ...checked, name: `source ${name}`, uuid: randomUUID(), credentials_location: credentialsLocation };
  const listQuery = conn.queries.access![0]!;
  const finishQuery = conn.queries.test![0]!;
  const fields = fieldsOf(o.fields as Record<string, unknown>);
  const eligible = eligibleOf(o.eligible);

  let insecure = opts.insecureDispatcher;
  const ctx: ApiProxyContext = {
    dispatchers: {
      verified: opts.dispatcher ?? getGlobalDispatcher(),
      insecure: () => (insecure ??= new Agent({ connect: { rejectUnauthorized: false } })),
    },
    retry: opts.retry,
    maxObjectBytes: opts.maxObjectBytes ?? 64 * 1024 * 1024,
    steps: [],
    hooks: opts.hooks ?? {},
    tokens: opts.tokenCache ?? makeTokenCache(),
  };
  const log = (opts.logger ?? makeLogger({ level: 'ERROR', destination: { write: () => undefined } })).child({ source: name });
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HTTP_SOURCE_TIMEOUT_MS;
  const where = `source '${name}'`;

  /** A run of one query through the engine's query path, its identifiers being `values`. */
  async function makeRun(query: APIProxyQuery, values: Readonly<Record<string, string>>, signal: AbortSignal): Promise<ConnectionRun> {
    const secret = await secrets.get(credentialsLocation);
    return makeApiProxyRun({ conn, type: 'test', collisionType: query.paginate ? 'access' : 'test', identifiers: values, secret, secrets, queries: [query], ctx, signal, log });
  }

  /** The caller's signal bounded by the timeout; `what` names the work in the timeout's message. */
  function bounded(signal: AbortSignal, what: string): { signal: AbortSignal; abort: AbortController; done: () => void } {
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new AgentError(ErrorCodes.JOB_TIMEOUT, `${what} of ${where} did not finish within ${Math.round(timeoutMs / 1000)} s (logins, pages and retries included)`)),
      timeoutMs,
    );
    timer.unref();
    return { signal: AbortSignal.any([signal, abort.signal]), abort, done: () => clearTimeout(timer) };
  }

  /** An engine error with the source and the call named; the caller's own abort reason passes through. */
  function wrapped(err: unknown, what: string, caller: AbortSignal): unknown {
    if (caller.aborted || !isAgentError(err) || err.code === ErrorCodes.JOB_TIMEOUT || err.code === ErrorCodes.CANCELLED) return err;
    return new AgentError(err.code, `${what} of ${where} failed: ${err.message}`, { cause: err, ...(err.status !== undefined && { status: err.status }) });
  }

  /** The record as a PendingRequest; undefined when it is not eligible or its type maps to no job. */
  function toPending(record: Record<string, unknown>): PendingRequest | undefined {
    if (eligible && !eligible.values.has(scalarText(valueAt(record, eligible.pointer)) ?? '\u0000')) return undefined;
    const id = idOf(valueAt(record, fields.id));
    if (id === undefined) {
      throw new AgentError(ErrorCodes.RESPONSE_MALFORMED, `a request in the list of ${where} has no id at "${fields.idText}" (fields.id); check the pointer against the response`);
    }
    const raw = valueAt(record, fields.type.pointer);
    const types: RequestType[] = [];
    for (const v of Array.isArray(raw) ? raw : [raw]) {
      const text = scalarText(v);
      if (text === undefined) continue;
      const type = fields.type.values ? (Object.hasOwn(fields.type.values, text) ? fields.type.values[text] : undefined) : (JOB_TYPES as readonly string[]).includes(text) ? (text as RequestType) : undefined;
      if (type && !types.includes(type)) types.push(type);
    }
    if (types.length === 0) return undefined;
    const identifiers: Record<string, string> = {};
    for (const [idName, at] of fields.identifiers) {
      const v = valueAt(record, at);
      const text = typeof v === 'string' ? v.trim() : typeof v === 'number' && Number.isFinite(v) ? String(v) : '';
      if (text !== '') identifiers[idName] = text;
    }
    if (Object.keys(identifiers).length === 0) {
      return { id, jobs: [], attention: `no identifier: nothing at ${fields.identifiers.map(([, , text]) => `"${text}"`).join(', ')} holds a value` };
    }
    Object.freeze(identifiers);
    return { id, jobs: types.map((type): PendingJob => Object.freeze({ type, identifiers })) };
  }

  async function* list(signal: AbortSignal): AsyncGenerator<PendingRequest> {
    const what = 'the request list';
    const b = bounded(signal, what);
    // The query path pushes records; the generator pulls them. The consumer waits while READ_AHEAD
    // requests are unread, so a listing of any size stays flat in memory.
    let buffer: PendingRequest[] = [];
    let wake: (() => void) | undefined;
    let resume: (() => void) | undefined;
    let done = false;
    let failure: unknown;
    const seen = new Set<string>();
    // A timeout or the caller's abort releases a consumer waiting for the reader.
    b.signal.addEventListener('abort', () => resume?.(), { once: true });
    const consume = async (record: Record<string, unknown>): Promise<void> => {
      if (b.signal.aborted) throw b.signal.reason;
      const pending = toPending(record);
      // A list that changes while its pages are read can show a request twice; yield it once.
      if (!pending || seen.has(pending.id)) return;
      seen.add(pending.id);
      buffer.push(pending);
      wake?.();
      if (buffer.length >= READ_AHEAD) await new Promise<void>((r) => (resume = r));
      if (b.signal.aborted) throw b.signal.reason;
    };
    const running = (async () => {
      const run = await makeRun(listQuery, {}, b.signal);
      await runQuery(run, compileQuery(listQuery), 'list', consume);
    })().then(
      () => void (done = true),
      (err) => {
        failure = wrapped(err, what, signal);
        done = true;
      },
    ).finally(() => wake?.());
    try {
      for (;;) {
        if (buffer.length > 0) {
          const batch = buffer;
          buffer = [];
          resume?.();
          resume = undefined;
          yield* batch;
          continue;
        }
        if (done) {
          if (failure !== undefined) throw failure;
          return;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      if (!done) {
        b.abort.abort(new AgentError(ErrorCodes.CANCELLED, `${what} of ${where} was stopped by its reader`));
        resume?.();
        await running;
      }
      b.done();
    }
  }

  async function writeBack(requestId: string, outcome: { jobs: readonly JobOutcome[] } | { attention: string }, signal: AbortSignal): Promise<void> {
    const what = `the finish query for request ${requestId}`;
    const b = bounded(signal, what);
    try {
      const secret = await secrets.get(credentialsLocation);
      const values: Record<string, string> =
        'attention' in outcome
          ? { request_id: requestId, job_id: '', job_status: 'attention' }
          : { request_id: requestId, job_id: outcome.jobs.map((j) => j.jobId).join(','), job_status: overallStatus(outcome.jobs) };
      values.summary = summarize(outcome, makeMask(Object.values(secret)));
      const run = await makeRun(finishQuery, Object.freeze(values), b.signal);
      await runQuery(run, compileQuery(finishQuery), 'finish');
    } catch (err) {
      throw wrapped(err, what, signal);
    } finally {
      b.done();
    }
  }

  return { name, list, writeBack };
}

/** `succeeded` when every job succeeded, `failed` when every job failed, else `partial`. */
function overallStatus(jobs: readonly JobOutcome[]): string {
  if (jobs.every((j) => j.status === 'succeeded')) return 'succeeded';
  if (jobs.every((j) => j.status === 'failed')) return 'failed';
  return 'partial';
}

/**
 * The config the list and finish queries and the tokens are checked and normalised in: one APIProxy
 * connection whose access query is `list` and whose test query is `finish` (a query reading
 * records and pages; a query reading neither). A missing query is replaced by a placeholder whose
 * problems are not reported (the missing option is).
 */
function syntheticConfig(o: Record<string, unknown>): Record<string, unknown> {
  const placeholder = { url: 'http://127.0.0.1/', verb: 'GET', verify_ssl: 'true' };
  return {
    connections: [
      {
        name: 'source',
        uuid: CHECK_UUID,
        capabilities: ['privacy/access'],
        mode: 'live',
        connector_type: 'APIProxy',
        credentials_location: 'source',
        queries: { access: [isObject(o.list) ? o.list : placeholder], test: [isObject(o.finish) ? o.finish : placeholder] },
        ...(o.tokens !== undefined && { tokens: o.tokens }),
      },
    ],
    platform: { credentials_manager: { provider: 'JSONFile', options: { filename: 'secrets.json' } } },
  };
}

/** Where a problem of the synthetic config is in the source's options, or undefined (not the source's). */
function sourcePath(path: string, o: Record<string, unknown>): string[] | undefined {
  const s = pointerSegments(path);
  if (s[0] !== 'connections' || s[1] !== '0') return undefined;
  if (s[2] === 'queries' && s[3] === 'access' && s[4] === '0') return isObject(o.list) ? ['list', ...s.slice(5)] : undefined;
  if (s[2] === 'queries' && s[3] === 'test' && s[4] === '0') return isObject(o.finish) ? ['finish', ...s.slice(5)] : undefined;
  if (s[2] === 'tokens') return s.slice(2);
  return undefined;
}

/** A connection's message said of the source's queries. */
function sourceMessage(message: string): string {
  return message
    .replaceAll('access and identifiers queries', 'the list query')
    .replaceAll('test, delete and optout queries', 'the finish query')
    .replaceAll("connection's secret", "source's secret");
}

/** Every problem with the `options` of an HTTP source (as the config writes them); [] when fine. */
export function checkHttpSourceOptions(options: unknown): HttpSourceOptionProblem[] {
  if (!isObject(options)) return [{ field: '', message: 'the options of an HTTP source must be an object with list, fields and finish' }];
  const problems: HttpSourceOptionProblem[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  const o = options;
  for (const key of Object.keys(o)) {
    if (!KNOWN_OPTIONS.includes(key)) add(key, `unknown option; the options of an HTTP source are ${KNOWN_OPTIONS.join(', ')}`);
  }
  if (o.list === undefined) add('list', 'required: the APIProxy query listing the pending requests (url, verb, verify_ssl, and records, paginate, graphql as needed)');
  else if (!isObject(o.list)) add('list', 'must be an APIProxy query object');
  if (o.finish === undefined) add('finish', 'required: the APIProxy query recording the outcome of a request; its templates may use {request_id}, {job_id}, {job_status} and {summary}');
  else if (!isObject(o.finish)) add('finish', 'must be an APIProxy query object');
  if (o.tokens !== undefined && !isObject(o.tokens)) add('tokens', 'must be an object of token name → {request, value, …}, as a connection\'s tokens');

  // The queries and tokens: every rule a connection's have.
  const synthetic = syntheticConfig({ ...o, tokens: isObject(o.tokens) ? o.tokens : undefined });
  for (const p of listConfigProblems(synthetic)) {
    const at = sourcePath(p.path, o);
    if (at) add(at.join('.'), sourceMessage(p.message));
  }
  if (isObject(o.list)) {
    const used = [...queryVariables(o.list)].filter((v) => (FINISH_VARIABLES as readonly string[]).includes(v));
    if (used.length > 0) add('list', `{${used.join('}, {')}} ${used.length === 1 ? 'has' : 'have'} a value in the finish query only; remove ${used.length === 1 ? 'it' : 'them'} from the list query`);
  }
  if (isObject(o.tokens)) {
    for (const t of Object.keys(o.tokens)) {
      if ((FINISH_VARIABLES as readonly string[]).includes(t)) add(`tokens.${t}`, `token name '${t}' is a template variable of the finish query ({${FINISH_VARIABLES.join('}, {')}}); rename the token`);
    }
  }

  if (o.fields === undefined) add('fields', 'required: {"id": pointer, "type": {"pointer": …, "values": {…}}, "identifiers": {name: pointer}}, pointers into each listed record');
  else if (!isObject(o.fields)) add('fields', 'must be an object with id, type and identifiers');
  else checkFields(o.fields, add);

  if (o.eligible !== undefined) {
    const e = o.eligible;
    if (!isObject(e)) add('eligible', 'must be {"pointer": …, "values": […]}: only records holding one of the values at the pointer are listed');
    else {
      for (const key of Object.keys(e)) if (key !== 'pointer' && key !== 'values') add(`eligible.${key}`, 'unknown field; eligible has pointer and values');
      checkPointerField(e.pointer, 'eligible.pointer', add);
      if (!Array.isArray(e.values) || e.values.length === 0) add('eligible.values', 'must be a non-empty array of strings, numbers or booleans');
      else e.values.forEach((v, i) => scalarText(v) === undefined && add(`eligible.values.${i}`, 'must be a string, a number or a boolean'));
    }
  }
  if (o.poll_interval_seconds !== undefined && !(Number.isInteger(o.poll_interval_seconds) && (o.poll_interval_seconds as number) > 0)) {
    add('poll_interval_seconds', 'must be a positive integer (seconds)');
  }
  return problems;
}

function checkFields(f: Record<string, unknown>, add: (field: string, message: string) => void): void {
  for (const key of Object.keys(f)) if (!KNOWN_FIELDS.includes(key)) add(`fields.${key}`, `unknown field; fields are ${KNOWN_FIELDS.join(', ')}`);
  if (f.id === undefined) add('fields.id', 'required: the JSON pointer to the request id in a record, e.g. "/id"');
  else checkPointerField(f.id, 'fields.id', add);
  const t = f.type;
  if (t === undefined) add('fields.type', 'required: {"pointer": "/requestType", "values": {"ACCESS": "access", "DELETION": "delete"}}');
  else if (!isObject(t)) add('fields.type', 'must be {"pointer": …, "values": {platform value: job type}}');
  else {
    for (const key of Object.keys(t)) if (key !== 'pointer' && key !== 'values') add(`fields.type.${key}`, 'unknown field; type has pointer and values');
    if (t.pointer === undefined) add('fields.type.pointer', 'required: the JSON pointer to the request type in a record, e.g. "/requestType"');
    else checkPointerField(t.pointer, 'fields.type.pointer', add);
    if (t.values !== undefined) {
      if (!isObject(t.values) || Object.keys(t.values).length === 0) add('fields.type.values', `must be a non-empty map of platform value to job type (${JOB_TYPES.join(', ')})`);
      else {
        for (const [k, v] of Object.entries(t.values)) {
          if (!(JOB_TYPES as readonly unknown[]).includes(v)) add(`fields.type.values.${k}`, `must be one of ${JOB_TYPES.join(', ')}`);
        }
      }
    }
  }
  const ids = f.identifiers;
  if (ids === undefined) add('fields.identifiers', 'required: a map of identifier name to JSON pointer in a record, e.g. {"email": "/dataSubject/email"}');
  else if (!isObject(ids) || Object.keys(ids).length === 0) add('fields.identifiers', 'must be a non-empty map of identifier name to JSON pointer, e.g. {"email": "/dataSubject/email"}');
  else {
    for (const [k, v] of Object.entries(ids)) {
      if (!NAME_PATTERN.test(k)) add(`fields.identifiers.${k}`, 'not an identifier name (letters, digits and _, not starting with a digit)');
      checkPointerField(v, `fields.identifiers.${k}`, add);
    }
  }
}

function checkPointerField(v: unknown, field: string, add: (field: string, message: string) => void): void {
  if (typeof v !== 'string') {
    add(field, 'must be a JSON pointer string, e.g. "/id"');
    return;
  }
  const problem = pointerProblem(v);
  if (problem) add(field, `${problem} (an RFC 6901 JSON pointer into a record)`);
}

function fieldsOf(f: Record<string, unknown>): Fields {
  const t = f.type as { pointer: string; values?: Record<string, RequestType> };
  return {
    id: parsePointer(f.id as string),
    idText: f.id as string,
    type: { pointer: parsePointer(t.pointer), ...(t.values && { values: Object.freeze({ ...t.values }) }) },
    identifiers: Object.entries(f.identifiers as Record<string, string>).map(([n, text]) => [n, parsePointer(text), text] as const),
  };
}

function eligibleOf(e: unknown): { pointer: readonly string[]; values: ReadonlySet<string> } | undefined {
  if (!isObject(e)) return undefined;
  return { pointer: parsePointer(e.pointer as string), values: new Set((e.values as unknown[]).map((v) => scalarText(v)!)) };
}

/** A string, finite number or boolean as text; undefined for anything else (absent, null, objects). */
function scalarText(v: unknown): string | undefined {
  if (v === ABSENT) return undefined;
  if (typeof v === 'string') return v;
  if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean') return String(v);
  return undefined;
}

function idOf(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  if (typeof v === 'string' && v.trim() !== '') return v;
  return undefined;
}
