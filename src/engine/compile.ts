import type { APIProxyConnection, APIProxyQuery, Connection, Paginate, QueriesOf, QueryType } from '../config/types.js';
import { parseTemplate, bodyKindFor, type Template, type BodyKind } from '../templates.js';
import { parsePointer } from '../json-pointer.js';

/** A parsed JSON pointer with its text (for messages). */
export interface Pointer {
  readonly text: string;
  readonly tokens: readonly string[];
}

/** A GraphQL request with its variable templates parsed. */
export interface CompiledGraphQL {
  readonly document: string;
  readonly variables: ReadonlyArray<readonly [string, Template]>;
  readonly operationName?: string;
}

/** An APIProxyQuery with its templates and pointers parsed once (they are validated at config load). */
export interface CompiledQuery {
  readonly query: APIProxyQuery;
  readonly method: string;
  readonly url: Template;
  readonly headers: ReadonlyArray<readonly [string, Template]>;
  readonly body?: { readonly template: Template; readonly kind: BodyKind };
  readonly graphql?: CompiledGraphQL;
  readonly valid: ReadonlySet<number>;
  readonly retryOn: ReadonlySet<number>;
  /** Every variable the query's templates use. */
  readonly variables: ReadonlySet<string>;
  /** The target's origin with placeholders filled by "x": what logs may show (never the path or query). */
  readonly origin: string;
  /** Where the records are; undefined: the body must be a JSON array (DataGrail's contract). */
  readonly records?: Pointer;
  /** Values a valid response must hold. */
  readonly expect: ReadonlyArray<{ readonly at: Pointer; readonly value: unknown }>;
  /** What the query itself reads from a response: its `expect` pointers, then GraphQL's `/errors`. */
  readonly captures: readonly Pointer[];
  readonly paginate?: Paginate;
}

const cache = new WeakMap<APIProxyQuery, CompiledQuery>();
/** A pointer from its (valid) text. */
export const pointerOf = (text: string): Pointer => ({ text, tokens: parsePointer(text) });

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
  let graphql: CompiledGraphQL | undefined;
  if (query.graphql) {
    graphql = {
      document: query.graphql.query,
      variables: Object.entries(query.graphql.variables ?? {}).map(([k, v]) => [k, parseTemplate(v)] as const),
      ...(query.graphql.operation_name !== undefined && { operationName: query.graphql.operation_name }),
    };
  }
  const variables = new Set<string>([
    ...url.variables,
    ...headers.flatMap(([, t]) => t.variables),
    ...(body?.template.variables ?? []),
    ...(graphql?.variables.flatMap(([, t]) => t.variables) ?? []),
  ]);
  const expect = Object.entries(query.expect ?? {}).map(([text, value]) => ({ at: pointerOf(text), value }));
  const compiled: CompiledQuery = {
    query,
    method: query.verb.toUpperCase(),
    url,
    headers,
    body,
    graphql,
    valid: new Set(query.valid_response_codes ?? [200]),
    retryOn: new Set(query.fail_retry_response_codes ?? []),
    variables,
    origin: originOf(query.url),
    records: query.records === undefined ? undefined : pointerOf(query.records),
    expect,
    captures: [...expect.map((e) => e.at), ...(graphql ? [pointerOf('/errors')] : [])],
    paginate: query.paginate,
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
export interface LabelledQuery<Q = APIProxyQuery | string> {
  readonly label: string;
  /** An APIProxy query object, or a statement (SQL, command line) for the other connector types. */
  readonly query: Q;
  /** For identifiers queries: the identifier name the response is keyed by. */
  readonly identifier?: string;
}

/** A connection's queries of one type in the order they run: `access[0]`, `identifiers.user_id[1]`, … */
export function queriesOf(conn: APIProxyConnection, type: QueryType): LabelledQuery<APIProxyQuery>[];
export function queriesOf(conn: Connection, type: QueryType): LabelledQuery[];
export function queriesOf(conn: Connection, type: QueryType): LabelledQuery[] {
  const queries = conn.queries as QueriesOf<APIProxyQuery | string>;
  if (type === 'identifiers') {
    return Object.entries(queries.identifiers ?? {}).flatMap(([identifier, qs]) =>
      qs.map((query, i) => ({ label: `identifiers.${identifier}[${i}]`, query, identifier })),
    );
  }
  return (queries[type] ?? []).map((query, i) => ({ label: `${type}[${i}]`, query }));
}
