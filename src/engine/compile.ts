import type { APIProxyQuery, Connection, QueryType } from '../config/types.js';
import { parseTemplate, bodyKindFor, type Template, type BodyKind } from '../templates.js';

/** An APIProxyQuery with its templates parsed once (they are validated at config load). */
export interface CompiledQuery {
  readonly query: APIProxyQuery;
  readonly method: string;
  readonly url: Template;
  readonly headers: ReadonlyArray<readonly [string, Template]>;
  readonly body?: { readonly template: Template; readonly kind: BodyKind };
  readonly valid: ReadonlySet<number>;
  readonly retryOn: ReadonlySet<number>;
  /** Every variable the query's templates use. */
  readonly variables: ReadonlySet<string>;
  /** The target's origin with placeholders filled by "x": what logs may show (never the path or query). */
  readonly origin: string;
}

const cache = new WeakMap<APIProxyQuery, CompiledQuery>();

/** Parse a query's templates once; later calls with the same (frozen) query return the same object. */
export function compileQuery(query: APIProxyQuery): CompiledQuery {
  const hit = cache.get(query);
  if (hit) return hit;
  const headers = Object.entries(query.headers ?? {}).map(([k, v]) => [k, parseTemplate(v)] as const);
  const contentType = Object.entries(query.headers ?? {}).find(([k]) => k.toLowerCase() === 'content-type')?.[1];
  const url = parseTemplate(query.url);
  let body: CompiledQuery['body'];
  if (query.body !== undefined) {
    const template = parseTemplate(query.body);
    body = { template, kind: bodyKindFor(template, contentType) };
  }
  const variables = new Set<string>([...url.variables, ...headers.flatMap(([, t]) => t.variables), ...(body?.template.variables ?? [])]);
  const compiled: CompiledQuery = {
    query,
    method: query.verb.toUpperCase(),
    url,
    headers,
    body,
    valid: new Set(query.valid_response_codes ?? [200]),
    retryOn: new Set(query.fail_retry_response_codes ?? []),
    variables,
    origin: originOf(query.url),
  };
  cache.set(query, compiled);
  return compiled;
}

function originOf(url: string): string {
  try {
    return new URL(url.replace(/\{+[^}]*\}+/g, 'x')).origin;
  } catch {
    return 'unknown';
  }
}

/** One query of a connection for a query type, in run order, with the label logs and --dry-run show. */
export interface LabelledQuery {
  readonly label: string;
  readonly query: APIProxyQuery;
  /** For identifiers queries: the identifier name the response is keyed by. */
  readonly identifier?: string;
}

/** A connection's queries of one type in the order they run: `access[0]`, `identifiers.user_id[1]`, … */
export function queriesOf(conn: Connection, type: QueryType): LabelledQuery[] {
  if (type === 'identifiers') {
    return Object.entries(conn.queries.identifiers ?? {}).flatMap(([identifier, qs]) =>
      qs.map((query, i) => ({ label: `identifiers.${identifier}[${i}]`, query, identifier })),
    );
  }
  return (conn.queries[type] ?? []).map((query, i) => ({ label: `${type}[${i}]`, query }));
}
