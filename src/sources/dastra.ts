/**
 * Dastra as a request source (seed 002): list the workspace's data subject requests
 * (`GET /v1/ws/{workspaceId}/DataSubjectRequests`, paged `{items, total, size, page}`), turn the
 * eligible ones into jobs, and write outcomes back by reading a request and PUTting the whole
 * object again (`GET`/`PUT /v1/ws/{workspaceId}/DataSubjectRequests/{id}`).
 *
 * Nothing Dastra sends back goes into an error: errors carry the status only. A write-back states
 * job ids, types, statuses, report counts and the storage location, never data or identifiers.
 */
import { getGlobalDispatcher, type Dispatcher } from 'undici';
import { AgentError, ErrorCodes, isAgentError } from '../errors.js';
import { sendWithRetry, type AttemptFailure, type RetryPolicy } from '../engine/send.js';
import { makeMask, noMask, type Mask } from '../engine/mask.js';
import { NAME_PATTERN } from '../names.js';
import type { RequestType } from '../config/types.js';
import type { JobOutcome, PendingJob, PendingRequest, RequestSource } from './types.js';

/** Request states the seed lists. */
export const DASTRA_STATES = ['Open', 'IdentityValidation', 'Processing', 'Active', 'Closed'] as const;
/** Request purposes (types) the seed lists. */
export const DASTRA_PURPOSES = [
  'Unknown', 'Information', 'Access', 'Rectification', 'Erasure', 'Restriction', 'Opposition', 'Portability', 'AdvanceDirectives', 'AutomatedDecision',
] as const;
/** Default `states`: requests in these states are eligible. */
export const DEFAULT_DASTRA_STATES: readonly string[] = Object.freeze(['Open', 'Processing']);
/** Default `purposes`: Dastra purpose → job type. */
export const DEFAULT_DASTRA_PURPOSES: Readonly<Record<string, RequestType>> = Object.freeze({ Access: 'access', Portability: 'access', Erasure: 'delete', Opposition: 'optout' });
/** Default `identifiers`: request field → identifier name. */
export const DEFAULT_DASTRA_IDENTIFIERS: Readonly<Record<string, string>> = Object.freeze({ email: 'email', phoneNumber: 'phone_number', userId: 'user_id' });
/** Default `page_size`: 100 requests per page (at most 1000). */
export const DEFAULT_DASTRA_PAGE_SIZE = 100;
/** Default bound on pages per listing (10,000); needing more is an error, never a silent truncation. */
export const DEFAULT_DASTRA_MAX_PAGES = 10_000;
/** A response body larger than this (64 MiB) is refused as malformed rather than buffered. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Cap on a resolution message (characters). */
const MAX_MESSAGE_CHARS = 8000;
const RETRY_ON: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);
const VALID_GET: ReadonlySet<number> = new Set([200]);
const VALID_PUT: ReadonlySet<number> = new Set([200, 201, 204]);
/** Request fields holding personal data: masked out of every write-back whatever the identifier map says. */
const PERSONAL_FIELDS = ['email', 'phoneNumber', 'userId', 'givenName', 'familyName', 'address'];

/** Options of {@link makeDastraSource}. */
export interface DastraSourceOptions {
  /** The source's name in the config. */
  readonly name: string;
  /** Dastra's API origin, e.g. `https://api.dastra.eu` (a path prefix is kept). */
  readonly baseUrl: string;
  readonly workspaceId: string | number;
  /** Rendered auth headers (e.g. `Authorization: Basic …`), sent with every call. */
  readonly headers: Readonly<Record<string, string>>;
  /** Eligible states, sent as the `states` filter. Default {@link DEFAULT_DASTRA_STATES}. */
  readonly states?: readonly string[];
  /** Dastra purpose → job type; its keys are sent as the `purposes` filter. Default {@link DEFAULT_DASTRA_PURPOSES}. */
  readonly purposes?: Readonly<Record<string, RequestType>>;
  /** Request field → identifier name. Default {@link DEFAULT_DASTRA_IDENTIFIERS}. */
  readonly identifiers?: Readonly<Record<string, string>>;
  /** Only requests with `identityValidated: true` are eligible. Default true. */
  readonly requireIdentityValidated?: boolean;
  /** State set by a write-back whose jobs all succeeded. Default: the state is left unchanged. */
  readonly stateWhenDone?: string;
  /** Requests per page (`size`). Default 100. */
  readonly pageSize?: number;
  readonly retry: RetryPolicy;
  /** Default: undici's global dispatcher. */
  readonly dispatcher?: Dispatcher;
  /** Pages one listing may read. Default 10,000. */
  readonly maxPages?: number;
  /** Told about each retried call (for logs and metrics; carries no personal data). */
  readonly onRetry?: (f: AttemptFailure & { readonly call: DastraCall }) => void;
}

/** The calls the adapter makes. */
export type DastraCall = 'list' | 'read' | 'update';

const CALL_TEXT: Record<DastraCall, string> = { list: 'the request list', read: 'reading a request', update: 'updating a request' };

/** Make a {@link RequestSource} reading Dastra's data subject requests. */
export function makeDastraSource(opts: DastraSourceOptions): RequestSource {
  const { name, retry } = opts;
  const states = new Set(opts.states ?? DEFAULT_DASTRA_STATES);
  const purposes = opts.purposes ?? DEFAULT_DASTRA_PURPOSES;
  const identifierMap = Object.entries(opts.identifiers ?? DEFAULT_DASTRA_IDENTIFIERS);
  const requireValidated = opts.requireIdentityValidated ?? true;
  const pageSize = opts.pageSize ?? DEFAULT_DASTRA_PAGE_SIZE;
  const maxPages = opts.maxPages ?? DEFAULT_DASTRA_MAX_PAGES;
  const dispatcher = opts.dispatcher ?? getGlobalDispatcher();
  const ws = String(opts.workspaceId);
  const base = `${opts.baseUrl.replace(/\/+$/, '')}/v1/ws/${encodeURIComponent(ws)}/DataSubjectRequests`;
  const headers: Record<string, string> = { accept: 'application/json' };
  for (const [k, v] of Object.entries(opts.headers)) headers[k.toLowerCase()] = v;
  const filter = new URLSearchParams();
  for (const s of states) filter.append('states', s);
  for (const p of Object.keys(purposes)) filter.append('purposes', p);

  const where = `source '${name}'`;
  const malformed = (what: string) => new AgentError(ErrorCodes.RESPONSE_MALFORMED, `${what} from Dastra (${where}); check base_url and workspace_id`);

  async function call(call: DastraCall, method: 'GET' | 'PUT', url: string, signal: AbortSignal, body?: string): Promise<Dispatcher.ResponseData> {
    const h = body === undefined ? headers : { ...headers, 'content-type': 'application/json' };
    try {
      return await sendWithRetry({ method, url, headers: h, body }, {
        dispatcher,
        valid: method === 'PUT' ? VALID_PUT : VALID_GET,
        retryOn: RETRY_ON,
        policy: retry,
        signal,
        onRetry: opts.onRetry && ((f) => opts.onRetry!({ ...f, call })),
      });
    } catch (err) {
      if (signal.aborted) throw err;
      if (isAgentError(err, ErrorCodes.HTTP_STATUS) && err.status !== undefined) throw statusError(err.status, call);
      if (isAgentError(err, ErrorCodes.HTTP_NETWORK)) {
        throw new AgentError(ErrorCodes.HTTP_NETWORK, `Dastra (${where}) could not be reached for ${CALL_TEXT[call]}: ${err.message}`, { cause: err.cause });
      }
      throw err;
    }
  }

  function statusError(status: number, call: DastraCall): AgentError {
    let message: string;
    if (status === 401 || status === 403) {
      message = `Dastra refused the credentials of ${where} (${status}); check its auth headers and that the key may use workspace ${ws}`;
    } else if (status === 404) {
      message = call === 'list'
        ? `Dastra answered 404 to the request list of ${where}; check base_url and workspace_id`
        : `Dastra answered 404 for a request of ${where}: no such request in workspace ${ws}`;
    } else if (RETRY_ON.has(status)) {
      message = `Dastra answered ${status} to ${CALL_TEXT[call]} of ${where} after ${retry.retries + 1} attempts`;
    } else {
      message = `Dastra answered ${status} to ${CALL_TEXT[call]} of ${where}`;
    }
    return new AgentError(ErrorCodes.HTTP_STATUS, message, { status });
  }

  async function readText(res: Dispatcher.ResponseData, what: string): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.body.destroy();
        throw malformed(`${what} larger than ${MAX_BODY_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** The request as a PendingRequest; undefined when it is not eligible or has no mapped purpose. */
  function toPending(item: Record<string, unknown>, id: string): PendingRequest | undefined {
    if (typeof item.state !== 'string' || !states.has(item.state)) return undefined;
    if (requireValidated && item.identityValidated !== true) return undefined;
    const types: RequestType[] = [];
    for (const p of Array.isArray(item.purposes) ? item.purposes : []) {
      const type = typeof p === 'string' && Object.hasOwn(purposes, p) ? purposes[p] : undefined;
      if (type && !types.includes(type)) types.push(type);
    }
    if (types.length === 0) return undefined;
    const identifiers: Record<string, string> = {};
    for (const [field, idName] of identifierMap) {
      const v = item[field];
      const text = typeof v === 'string' ? v.trim() : typeof v === 'number' && Number.isFinite(v) ? String(v) : '';
      if (text !== '' && !(idName in identifiers)) identifiers[idName] = text;
    }
    if (Object.keys(identifiers).length === 0) {
      return { id, jobs: [], attention: `no identifier: none of the request's fields ${identifierMap.map(([f]) => f).join(', ')} holds a value` };
    }
    Object.freeze(identifiers);
    return { id, jobs: types.map((type): PendingJob => Object.freeze({ type, identifiers })) };
  }

  async function* list(signal: AbortSignal): AsyncGenerator<PendingRequest> {
    // Offset paging over a list that changes while it is read can show a request twice; yield it once.
    const seen = new Set<string>();
    let received = 0;
    for (let page = 1; ; page++) {
      if (page > maxPages) {
        throw new AgentError(ErrorCodes.PAGINATION_LIMIT, `the request list of ${where} has more than ${maxPages} pages of ${pageSize}; raise page_size (nothing was truncated silently: the listing failed)`);
      }
      const query = new URLSearchParams(filter);
      query.set('page', String(page));
      query.set('size', String(pageSize));
      const res = await call('list', 'GET', `${base}?${query}`, signal);
      let body: unknown;
      try {
        body = JSON.parse(await readText(res, 'a request list page'));
      } catch (err) {
        if (isAgentError(err)) throw err;
        throw malformed('a request list page that is not JSON');
      }
      if (!isObject(body) || !Array.isArray(body.items)) throw malformed('a request list page without an `items` array');
      const { items, total, size } = body;
      if (total !== undefined && total !== null && !isCount(total)) throw malformed('a request list page whose `total` is not a count');
      for (const item of items) {
        if (!isObject(item)) throw malformed('a request list item that is not an object');
        const id = idOf(item.id);
        if (id === undefined) throw malformed('a request list item without an id');
        const pending = toPending(item, id);
        if (pending && !seen.has(id)) {
          seen.add(id);
          yield pending;
        }
      }
      received += items.length;
      const pageLength = isCount(size) && size > 0 ? size : pageSize;
      if (items.length === 0 || items.length < pageLength || (isCount(total) && received >= total)) return;
    }
  }

  async function writeBack(requestId: string, outcome: { jobs: readonly JobOutcome[] } | { attention: string }, signal: AbortSignal): Promise<void> {
    const url = `${base}/${encodeURIComponent(requestId)}`;
    const res = await call('read', 'GET', url, signal);
    let request: unknown;
    try {
      request = parsePreservingNumbers(await readText(res, 'a request'));
    } catch (err) {
      if (isAgentError(err)) throw err;
      throw malformed('a request that is not JSON');
    }
    if (!isObject(request)) throw malformed('a request that is not a JSON object');
    if (idOf(rawValue(request.id)) !== requestId) throw malformed(`request ${requestId} answered with another id`);
    const personal = [...PERSONAL_FIELDS, ...identifierMap.map(([f]) => f)].map((f) => rawValue(request[f]));
    const mask = makeMask(personal.flatMap((v) => (typeof v === 'string' ? [v, v.trim()] : typeof v === 'number' ? [String(v)] : [])));
    request.resolutionMessage = summarize(outcome, mask);
    if ('jobs' in outcome && opts.stateWhenDone !== undefined && outcome.jobs.length > 0 && outcome.jobs.every((j) => j.status === 'succeeded')) {
      request.state = opts.stateWhenDone;
    }
    const put = await call('update', 'PUT', url, signal, JSON.stringify(request));
    await put.body.dump().catch(() => undefined);
  }

  return { name, list, writeBack };
}

/**
 * The resolution message for an outcome: ids, types, statuses, counts and storage, nothing else.
 * Every piece is masked before it is cut, so a cut cannot leave part of an identifier unmasked.
 */
export function summarize(outcome: { jobs: readonly JobOutcome[] } | { attention: string }, mask: Mask = noMask): string {
  const text = (s: unknown, max: number) => clean(mask(String(s)), max);
  if ('attention' in outcome) return `dsr-agent could not run this request: ${text(outcome.attention, 500)}`;
  const n = outcome.jobs.length;
  const lines = [`dsr-agent ran ${n} job${n === 1 ? '' : 's'} for this request.`];
  for (const job of outcome.jobs) {
    const conns = job.connections.map((c) => {
      const reports = Number.isSafeInteger(c.reports) && c.reports >= 0 ? c.reports : 0;
      return `${text(c.name, 100)} ${text(c.status, 40)} (${reports} report${reports === 1 ? '' : 's'})`;
    });
    lines.push(`- ${text(job.type, 20)} job ${text(job.jobId, 100)}: ${text(job.status, 20)}; connections: ${conns.join(', ') || 'none'}; reports stored at ${text(job.storage, 300)}`);
  }
  return cap(lines.join('\n'));
}

/** One problem with a Dastra source's options: the option (dotted for map keys) and what to do. */
export interface DastraOptionProblem {
  readonly field: string;
  readonly message: string;
}

const KNOWN_OPTIONS = [
  'base_url', 'workspace_id', 'states', 'purposes', 'identifiers', 'poll_interval_seconds', 'state_when_done', 'page_size', 'require_identity_validated',
];
const JOB_TYPES: readonly RequestType[] = ['access', 'delete', 'optout'];

/** Every problem with the `options` of a Dastra source (snake_case, as the config writes them); [] when fine. */
export function checkDastraOptions(options: unknown): DastraOptionProblem[] {
  if (!isObject(options)) return [{ field: '', message: 'the options of a dastra source must be an object' }];
  const problems: DastraOptionProblem[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.includes(key)) add(key, `unknown option; the options of a dastra source are ${KNOWN_OPTIONS.join(', ')}`);
  }
  const o = options;
  if (o.base_url === undefined) add('base_url', 'required: Dastra\'s API URL, e.g. "https://api.dastra.eu"');
  else if (typeof o.base_url !== 'string' || !isHttpUrl(o.base_url)) add('base_url', 'must be an absolute http(s) URL without credentials, query or fragment, e.g. "https://api.dastra.eu"');
  if (o.workspace_id === undefined) add('workspace_id', 'required: the id of the Dastra workspace to poll');
  else if (!(typeof o.workspace_id === 'string' && o.workspace_id.trim() !== '') && !(Number.isInteger(o.workspace_id) && (o.workspace_id as number) > 0)) {
    add('workspace_id', 'must be a non-empty string or a positive integer');
  }
  if (o.states !== undefined) {
    if (!Array.isArray(o.states) || o.states.length === 0) add('states', `must be a non-empty array of Dastra states (${DASTRA_STATES.join(', ')})`);
    else {
      o.states.forEach((s, i) => {
        if (!(DASTRA_STATES as readonly unknown[]).includes(s)) add(`states.${i}`, `must be one of ${DASTRA_STATES.join(', ')}`);
        else if (o.states && (o.states as unknown[]).indexOf(s) !== i) add(`states.${i}`, `"${s}" is listed twice`);
      });
    }
  }
  if (o.purposes !== undefined) {
    if (!isObject(o.purposes) || Object.keys(o.purposes).length === 0) add('purposes', 'must be a non-empty map of Dastra purpose to job type, e.g. {"Access": "access", "Erasure": "delete"}');
    else {
      for (const [k, v] of Object.entries(o.purposes)) {
        if (!(DASTRA_PURPOSES as readonly string[]).includes(k)) add(`purposes.${k}`, `not a Dastra purpose; purposes are ${DASTRA_PURPOSES.join(', ')}`);
        if (!(JOB_TYPES as readonly unknown[]).includes(v)) add(`purposes.${k}`, `must be one of ${JOB_TYPES.join(', ')}`);
      }
    }
  }
  if (o.identifiers !== undefined) {
    if (!isObject(o.identifiers) || Object.keys(o.identifiers).length === 0) add('identifiers', 'must be a non-empty map of request field to identifier name, e.g. {"email": "email"}');
    else {
      for (const [k, v] of Object.entries(o.identifiers)) {
        if (!NAME_PATTERN.test(k)) add(`identifiers.${k}`, 'not a request field name (letters, digits and _)');
        if (typeof v !== 'string' || !NAME_PATTERN.test(v)) add(`identifiers.${k}`, 'must be an identifier name (letters, digits and _, not starting with a digit)');
      }
    }
  }
  if (o.poll_interval_seconds !== undefined && !(Number.isInteger(o.poll_interval_seconds) && (o.poll_interval_seconds as number) > 0)) {
    add('poll_interval_seconds', 'must be a positive integer (seconds)');
  }
  if (o.state_when_done !== undefined && !(DASTRA_STATES as readonly unknown[]).includes(o.state_when_done)) {
    add('state_when_done', `must be one of ${DASTRA_STATES.join(', ')}`);
  }
  if (o.page_size !== undefined && !(Number.isInteger(o.page_size) && (o.page_size as number) >= 1 && (o.page_size as number) <= 1000)) {
    add('page_size', 'must be an integer from 1 to 1000');
  }
  if (o.require_identity_validated !== undefined && typeof o.require_identity_validated !== 'boolean') {
    add('require_identity_validated', 'must be true or false');
  }
  return problems;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 0;
}

function idOf(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  if (typeof v === 'string' && v.trim() !== '') return v;
  return undefined;
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password && !u.search && !u.hash;
  } catch {
    return false;
  }
}

/** One line, no control characters, at most `max` characters. */
function clean(s: string, max: number): string {
  const one = s.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

function cap(s: string): string {
  return s.length > MAX_MESSAGE_CHARS ? `${s.slice(0, MAX_MESSAGE_CHARS - 1)}…` : s;
}

type RawJSON = (text: string) => unknown;
const rawJSON = (JSON as unknown as { rawJSON?: RawJSON }).rawJSON;
const isRawJSON = (JSON as unknown as { isRawJSON?: (v: unknown) => boolean }).isRawJSON;

/**
 * JSON.parse keeping every number's source text (JSON.rawJSON), so the PUT sends back exactly the
 * numbers Dastra sent: no 64-bit id rounded, no `1.0` turned into `1`.
 */
function parsePreservingNumbers(text: string): unknown {
  if (!rawJSON) return JSON.parse(text);
  const reviver = (_key: string, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' && context?.source !== undefined ? rawJSON(context.source) : value;
  return JSON.parse(text, reviver as (this: unknown, key: string, value: unknown) => unknown);
}

/** The plain value of a field parsed by {@link parsePreservingNumbers}. */
function rawValue(v: unknown): unknown {
  return isRawJSON?.(v) ? JSON.parse(JSON.stringify(v)) : v;
}
