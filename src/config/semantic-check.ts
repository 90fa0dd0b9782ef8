/**
 * Rules a JSON Schema cannot say: unique names and uuids, each capability has its queries,
 * templates parse, URLs are absolute http(s), status lists do not overlap, identifier names are
 * snake_case. Runs on the raw parsed value next to the schema check, so it guards every type.
 */
import type { ConfigProblem } from '../errors.js';
import { isAgentError } from '../errors.js';
import { parseTemplate } from '../templates.js';
import { DEFAULT_AGENT_OPTIONS } from './normalize.js';
import { isObject, pointer } from './problems.js';

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

/** Check one APIProxy query at `path`. */
function checkQuery(q: unknown, path: string, push: Push): void {
  if (!isObject(q)) return;
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
    if (Array.isArray(list)) list.forEach((q, j) => checkQuery(q, `${at}/queries/${type}/${j}`, push));
  }
  if (isObject(queries.identifiers)) {
    for (const [name, list] of Object.entries(queries.identifiers)) {
      const idAt = `${at}/queries/identifiers${pointer(name)}`;
      if (!SNAKE_CASE.test(name)) {
        push(idAt, `identifier name '${name}' is not snake_case; use the DataGrail identifier category in snake_case, e.g. user_id or primary_phone_number`);
      }
      if (Array.isArray(list)) list.forEach((q, j) => checkQuery(q, `${idAt}/${j}`, push));
    }
  }
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
