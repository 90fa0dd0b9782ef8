/**
 * The checks of one APIProxy query that a JSON Schema cannot say: templates parse, URLs are
 * absolute http(s), status lists do not overlap, and the dsr-agent fields (graphql, records,
 * expect, paginate) are well-formed and fit the query's kind.
 */
import { isAgentError } from '../errors.js';
import { parseTemplate } from '../templates.js';
import { isWithin, parsePointer, pointerProblem } from '../json-pointer.js';
import { isObject, pointer } from './problems.js';
import { pyformatProblem } from '../connectors/pyformat.js';
import { shellPlanOf } from '../connectors/shell-quote.js';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export type Push = (path: string, message: string) => void;

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
export type QueryKind = 'records' | 'status' | 'token';

/** Check one APIProxy query at `path`. */
export function checkQuery(q: unknown, path: string, push: Push, kind: QueryKind = 'status'): void {
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
export function checkPointer(value: unknown, path: string, push: Push): readonly string[] | undefined {
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


/**
 * Check one statement of a database or SSH connection: SQL placeholders are PEP 249 pyformat
 * (`%(name)s`, `%%`), bound as driver parameters; OracleDB writes `:name`; SSH command lines use
 * `{name}` templates (shell-quoted when filled).
 */
export function checkStatement(statement: string, connectorType: string, path: string, push: Push): void {
  if (connectorType === 'SSH') {
    if (!checkTemplate(statement, path, push)) return;
    try {
      shellPlanOf(parseTemplate(statement)); // a placeholder where no quoting is safe (backticks, ${…}, …)
    } catch (err) {
      push(path, isAgentError(err) ? err.message : 'the command line cannot be quoted safely');
    }
    return;
  }
  if (connectorType === 'OracleDB') return; // :name placeholders; not run by this version
  const problem = pyformatProblem(statement);
  if (problem) push(path, `${problem} (SQL placeholders are %(name)s, bound as parameters; %% is a literal percent sign)`);
}
