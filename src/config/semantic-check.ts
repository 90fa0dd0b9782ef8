/**
 * Rules a JSON Schema cannot say: unique names and uuids, each capability has its queries,
 * templates parse, URLs are absolute http(s), status lists do not overlap, identifier names are
 * snake_case. Runs on the raw parsed value next to the schema check, so it guards every type.
 */
import type { ConfigProblem } from '../errors.js';
import { isAgentError } from '../errors.js';
import { parseTemplate } from '../templates.js';
import { isWithin, parsePointer, pointerProblem } from '../json-pointer.js';
import { DEFAULT_AGENT_OPTIONS } from './normalize.js';
import { isObject, pointer } from './problems.js';
import { PAGINATION_VARIABLES } from './types.js';

const CAPABILITY_QUERIES: Readonly<Record<string, string>> = {
  'privacy/access': 'access',
  'privacy/delete': 'delete',
  'privacy/optout': 'optout',
  'privacy/identifiers': 'identifiers',
};
const QUERY_LISTS = ['test', 'access', 'delete', 'optout'] as const;
const SNAKE_CASE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

type Push = (path: string, message: string) => void;

/** Check one template; on failure report the parser's message, with template text taken out. */
function checkTemplate(source: string, path: string, push: Push): boolean {
  try {
    parseTemplate(source);
    return true;
  } catch (err) {
    const message = isAgentError(err) ? withoutFields(err.message, source) : 'the template does not parse';
    push(path, message);
    return false;
  }
}

/**
 * The parser quotes the text after a '{' (up to 32 characters) in its messages; in a header or
 * URL that text may be part of a token. Replace the quoted text with '…' (the message keeps
 * its column, which is enough to find the spot).
 */
function withoutFields(message: string, source: string): string {
  let out = message;
  for (let i = source.indexOf('{'); i >= 0; i = source.indexOf('{', i + 1)) {
    const rest = source.slice(i + 1);
    const end = rest.search(/[{}]/);
    const chars = [...(end < 0 ? rest : rest.slice(0, end))];
    if (chars.length === 0) continue;
    const shown = chars.length > 32 ? `${chars.slice(0, 32).join('')}…` : chars.join('');
    out = out.replaceAll(`'{${shown}}'`, "'{…}'").replaceAll(`'{${shown}'`, "'{…'");
  }
  return out;
}

/**
 * Fill every `{name}` with its name (then with "1", for placeholders standing for a port) and
 * check the result is an absolute http(s) URL.
 */
function isHttpUrl(template: string): boolean {
  for (const fill of [(name: string) => name, () => '1']) {
    const text = template.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, name: string | undefined) =>
      m === '{{' ? '{' : m === '}}' ? '}' : fill(name ?? ''),
    );
    try {
      const url = new URL(text);
      if ((url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '') return true;
    } catch {
      // not absolute, or not a URL with this fill: try the next one
    }
  }
  return false;
}

const codes = (v: unknown): number[] => (Array.isArray(v) ? v.filter((c): c is number => Number.isInteger(c)) : []);

/**
 * What a query is for, which decides the fields it may have: `records` queries (access,
 * identifiers) may read records and pages; `status` queries (test, delete, optout) and `token`
 * requests may not.
 */
type QueryKind = 'records' | 'status' | 'token';

/** Check one APIProxy query at `path`. */
function checkQuery(q: unknown, path: string, push: Push, kind: QueryKind = 'status'): void {
  if (!isObject(q)) return;
  checkExtensions(q, path, push, kind);
  if (typeof q.url === 'string' && q.url !== '' && checkTemplate(q.url, `${path}/url`, push) && !isHttpUrl(q.url)) {
    push(
      `${path}/url`,
      'url must be an absolute http:// or https:// URL (placeholders may fill parts of it), e.g. "https://api.example.com/v0/users?email={email}"',
    );
  }
  if (isObject(q.headers)) {
    for (const [name, value] of Object.entries(q.headers)) {
      const at = `${path}/headers${pointer(name)}`;
      if (!HEADER_NAME.test(name)) {
        push(at, `header name '${name}' is not a valid HTTP header name; use letters, digits and '-' only`);
      }
      if (typeof value !== 'string') continue;
      if (/[\r\n\0]/.test(value)) push(at, `header '${name}' contains a line break or NUL; remove it`);
      checkTemplate(value, at, push);
    }
  }
  if (typeof q.body === 'string') checkTemplate(q.body, `${path}/body`, push);
  const valid = codes(q.valid_response_codes ?? [200]);
  const both = [...new Set(codes(q.fail_retry_response_codes).filter((c) => valid.includes(c)))].sort((a, b) => a - b);
  if (both.length > 0) {
    push(
      `${path}/fail_retry_response_codes`,
      `${both.length === 1 ? 'status' : 'statuses'} ${both.join(', ')} ${both.length === 1 ? 'is' : 'are'} in both ` +
        `valid_response_codes${q.valid_response_codes === undefined ? ' (default [200])' : ''} and fail_retry_response_codes; ` +
        'a status is either a success or retried: remove it from one list',
    );
  }
}

/** Check a pointer field; returns its tokens when valid. */
function checkPointer(value: unknown, path: string, push: Push): readonly string[] | undefined {
  if (typeof value !== 'string') return undefined;
  const problem = pointerProblem(value);
  if (problem) {
    push(path, `${problem} (an RFC 6901 JSON pointer)`);
    return undefined;
  }
  return parsePointer(value);
}

/** The variables a query's templates use (url, headers, body, GraphQL variables); templates that do not parse are skipped. */
export function queryVariables(q: Record<string, unknown>): Set<string> {
  const sources: unknown[] = [q.url, q.body, ...(isObject(q.headers) ? Object.values(q.headers) : [])];
  if (isObject(q.graphql) && isObject(q.graphql.variables)) sources.push(...Object.values(q.graphql.variables));
  const out = new Set<string>();
  for (const source of sources) {
    if (typeof source !== 'string') continue;
    try {
      for (const v of parseTemplate(source).variables) out.add(v);
    } catch {
      // reported where the template is checked
    }
  }
  return out;
}

/** Which template variable each pagination style fills and needs. */
const PAGE_VARIABLE: Readonly<Record<string, string>> = { page: 'page', offset: 'offset', cursor: 'cursor' };

/** The dsr-agent fields of a query: graphql, records, expect, paginate. */
function checkExtensions(q: Record<string, unknown>, path: string, push: Push, kind: QueryKind): void {
  if (q.graphql !== undefined && q.body !== undefined) {
    push(`${path}/graphql`, 'a query has either body or graphql, not both; remove one');
  }
  if (isObject(q.graphql)) {
    if (typeof q.verb === 'string' && q.verb.toUpperCase() !== 'POST') {
      push(`${path}/verb`, 'a graphql query is sent as a JSON POST; set verb to "POST"');
    }
    if (isObject(q.graphql.variables)) {
      for (const [name, value] of Object.entries(q.graphql.variables)) {
        if (typeof value === 'string') checkTemplate(value, `${path}/graphql/variables${pointer(name)}`, push);
      }
    }
  }
  const notHere = kind === 'token' ? 'a token request' : 'test, delete and optout queries';
  for (const field of ['records', 'paginate'] as const) {
    if (q[field] !== undefined && kind !== 'records') {
      push(`${path}/${field}`, `${field} applies to access and identifiers queries only, not to ${notHere}; remove it`);
    }
  }
  if (kind === 'records' && q.records === undefined) {
    const needs = [
      q.graphql !== undefined && 'graphql',
      q.expect !== undefined && 'expect',
      isObject(q.paginate) && q.paginate.total !== undefined && 'paginate.total',
      isObject(q.paginate) && q.paginate.cursor !== undefined && 'paginate.cursor',
    ].filter(Boolean);
    if (needs.length) {
      push(
        `${path}/records`,
        `${needs.join(', ')} read${needs.length === 1 ? 's' : ''} members of the response, but without records the body must be a bare JSON array; ` +
          'add records: the JSON pointer to the records (e.g. "/data/users", or "" for the whole body)',
      );
    }
  }
  const records = checkPointer(q.records, `${path}/records`, push);
  const insideRecords = (tokens: readonly string[] | undefined, at: string, what: string) => {
    if (records && tokens && kind === 'records' && isWithin(tokens, records)) {
      push(at, `${what} points inside records ("${q.records}"), which is streamed record by record; point it outside the records`);
    }
  };
  if (isObject(q.expect)) {
    for (const key of Object.keys(q.expect)) {
      const at = `${path}/expect${pointer(key)}`;
      insideRecords(checkPointer(key, at, push), at, 'this expect pointer');
    }
  }
  if (isObject(q.paginate)) checkPaginate(q, q.paginate, `${path}/paginate`, push, insideRecords);
}

function checkPaginate(
  q: Record<string, unknown>,
  p: Record<string, unknown>,
  at: string,
  push: Push,
  insideRecords: (tokens: readonly string[] | undefined, at: string, what: string) => void,
): void {
  const style = p.style as string;
  const allowed: Readonly<Record<string, readonly string[]>> = {
    page: ['start', 'size', 'total'],
    offset: ['size', 'total'],
    cursor: ['cursor'],
    link: [],
  };
  if (!(style in allowed)) return; // the schema reports it
  for (const field of ['start', 'size', 'total', 'cursor']) {
    if (p[field] !== undefined && !allowed[style]!.includes(field)) {
      push(`${at}/${field}`, `${field} does not apply to paginate style "${style}"; remove it`);
    }
  }
  if (style === 'cursor' && p.cursor === undefined) {
    push(`${at}/cursor`, 'paginate style "cursor" needs cursor: the JSON pointer to the next cursor in a response, e.g. "/meta/next"');
  }
  for (const field of ['total', 'cursor'] as const) {
    const tokens = checkPointer(p[field], `${at}/${field}`, push);
    insideRecords(tokens, `${at}/${field}`, `paginate.${field}`);
  }
  const needs = PAGE_VARIABLE[style];
  if (needs && !queryVariables(q).has(needs)) {
    push(
      at,
      `paginate style "${style}" fills {${needs}}, but no template of this query uses it, so every page would be the same request; ` +
        `add {${needs}} to the url, a header, the body or a GraphQL variable`,
    );
  }
}

/** Check connection `i`'s tokens: fields, names, and that no token depends on itself. */
function checkTokens(tokens: Record<string, unknown>, at: string, identifierNames: ReadonlySet<string>, push: Push): void {
  const names = new Set(Object.keys(tokens));
  const deps = new Map<string, string[]>();
  for (const [name, t] of Object.entries(tokens)) {
    const tAt = `${at}/tokens${pointer(name)}`;
    if ((PAGINATION_VARIABLES as readonly string[]).includes(name)) {
      push(tAt, `token name '${name}' is reserved for pagination ({${PAGINATION_VARIABLES.join('}, {')}}); rename the token`);
    }
    if (identifierNames.has(name)) {
      push(tAt, `token name '${name}' is also an identifier name in queries.identifiers, so {${name}} would be ambiguous; rename the token`);
    }
    if (!isObject(t)) continue;
    checkQuery(t.request, `${tAt}/request`, push, 'token');
    for (const field of ['value', 'expires_in', 'expires_at'] as const) checkPointer(t[field], `${tAt}/${field}`, push);
    const lifetimes = ['expires_in', 'expires_at', 'ttl_seconds'].filter((f) => t[f] !== undefined);
    if (lifetimes.length > 1) {
      push(tAt, `${lifetimes.join(' and ')} are all ways to give the token's lifetime; keep only one`);
    }
    if (isObject(t.request)) deps.set(name, [...queryVariables(t.request)].filter((v) => names.has(v)));
  }
  // A cycle (a → b → a, or a → a) can never be fetched: report each token on one, once.
  const reported = new Set<string>();
  const visit = (name: string, trail: string[]): void => {
    const start = trail.indexOf(name);
    if (start >= 0) {
      const cycle = trail.slice(start);
      if (!cycle.some((n) => reported.has(n))) {
        cycle.forEach((n) => reported.add(n));
        push(
          `${at}/tokens${pointer(cycle[0]!)}/request`,
          `tokens depend on each other in a cycle (${[...cycle, cycle[0]].join(' → ')}), so none of them can be fetched; break the cycle`,
        );
      }
      return;
    }
    for (const d of deps.get(name) ?? []) visit(d, [...trail, name]);
  };
  for (const name of deps.keys()) visit(name, []);
}

/** Check the queries and capabilities of connection `i`. */
function checkConnection(c: Record<string, unknown>, i: number, push: Push): void {
  const at = pointer('connections', i);
  const queries = isObject(c.queries) ? c.queries : {};
  if (
    typeof c.credentials_location === 'string' &&
    typeof c.credentials_arn === 'string' &&
    c.credentials_location !== c.credentials_arn
  ) {
    push(
      `${at}/credentials_arn`,
      'credentials_arn and credentials_location are both given and differ; they are two names for one field: keep only credentials_location',
    );
  }
  const isEmptyList = (v: unknown) => v === undefined || (Array.isArray(v) && v.length === 0);
  if (c.connector_type === 'APIProxy' && isEmptyList(queries.test)) {
    push(`${at}/queries/test`, 'an APIProxy connection needs at least one test query (a health check, e.g. GET /health); add one to queries.test');
  }
  for (const capability of Array.isArray(c.capabilities) ? c.capabilities : []) {
    const type = CAPABILITY_QUERIES[capability as string];
    if (type === undefined) continue;
    const q = queries[type];
    const missing = type === 'identifiers' ? q === undefined || (isObject(q) && Object.keys(q).length === 0) : isEmptyList(q);
    if (missing) {
      const what = type === 'identifiers' ? 'at least one identifier with its queries' : `at least one ${type} query`;
      push(`${at}/queries/${type}`, `capability ${capability} needs ${what} in queries.${type}; add them or remove the capability`);
    }
  }
  for (const type of QUERY_LISTS) {
    const list = queries[type];
    const kind: QueryKind = type === 'access' ? 'records' : 'status';
    if (Array.isArray(list)) list.forEach((q, j) => checkQuery(q, `${at}/queries/${type}/${j}`, push, kind));
  }
  if (isObject(queries.identifiers)) {
    for (const [name, list] of Object.entries(queries.identifiers)) {
      const idAt = `${at}/queries/identifiers${pointer(name)}`;
      if (!SNAKE_CASE.test(name)) {
        push(idAt, `identifier name '${name}' is not snake_case; use the DataGrail identifier category in snake_case, e.g. user_id or primary_phone_number`);
      }
      if (Array.isArray(list)) list.forEach((q, j) => checkQuery(q, `${idAt}/${j}`, push, 'records'));
    }
  }
  if (isObject(c.tokens)) checkTokens(c.tokens, at, new Set(isObject(queries.identifiers) ? Object.keys(queries.identifiers) : []), push);
}

/** retry_min_delay_ms must not exceed retry_max_delay_ms (either may be a default). */
function checkRetryDelays(agent: Record<string, unknown>, push: Push): void {
  const min = agent.retry_min_delay_ms ?? DEFAULT_AGENT_OPTIONS.retry_min_delay_ms;
  const max = agent.retry_max_delay_ms ?? DEFAULT_AGENT_OPTIONS.retry_max_delay_ms;
  if (!Number.isInteger(min) || !Number.isInteger(max) || (min as number) <= (max as number)) return;
  const field = agent.retry_max_delay_ms === undefined ? 'retry_min_delay_ms' : 'retry_max_delay_ms';
  push(
    `/agent/${field}`,
    'retry_min_delay_ms is above retry_max_delay_ms ' +
      `(defaults ${DEFAULT_AGENT_OPTIONS.retry_min_delay_ms} and ${DEFAULT_AGENT_OPTIONS.retry_max_delay_ms}); ` +
      'lower retry_min_delay_ms or raise retry_max_delay_ms',
  );
}

/** Every semantic problem of a parsed config (unsorted; the caller sorts and de-duplicates). */
export function checkSemantics(raw: unknown): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const push: Push = (path, message) => problems.push({ path, message });
  if (!isObject(raw)) return problems;
  const names = new Map<string, number>();
  const uuids = new Map<string, number>();
  (Array.isArray(raw.connections) ? raw.connections : []).forEach((c, i) => {
    if (!isObject(c)) return;
    if (typeof c.name === 'string') {
      const first = names.get(c.name);
      if (first === undefined) names.set(c.name, i);
      else push(pointer('connections', i, 'name'), `connection ${i} has the same name '${c.name}' as connection ${first}; give each connection its own name`);
    }
    if (typeof c.uuid === 'string') {
      const key = c.uuid.toLowerCase();
      const first = uuids.get(key);
      if (first === undefined) uuids.set(key, i);
      else push(pointer('connections', i, 'uuid'), `connection ${i} has the same uuid as connection ${first}; give each connection its own uuid`);
    }
    checkConnection(c, i, push);
  });
  if (isObject(raw.agent)) checkRetryDelays(raw.agent, push);
  return problems;
}
