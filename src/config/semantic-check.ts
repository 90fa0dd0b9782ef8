/**
 * Rules a JSON Schema cannot say, across a connection: unique names and uuids, each capability has
 * its queries, identifier names are snake_case, tokens are well-formed and free of cycles (one
 * query's own rules are in query-check.ts). Runs on the raw parsed value next to the schema check.
 */
import type { ConfigProblem } from '../errors.js';
import { DEFAULT_AGENT_OPTIONS } from './normalize.js';
import { isObject, pointer } from './problems.js';
import { checkPointer, checkQuery, checkStatement, queryVariables, type Push, type QueryKind } from './query-check.js';
import { PAGINATION_VARIABLES } from './types.js';

const CAPABILITY_QUERIES: Readonly<Record<string, string>> = {
  'privacy/access': 'access',
  'privacy/delete': 'delete',
  'privacy/optout': 'optout',
  'privacy/identifiers': 'identifiers',
};
const QUERY_LISTS = ['test', 'access', 'delete', 'optout'] as const;
const SNAKE_CASE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;

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
  // A statement (database, SSH) is checked by its own rules; an APIProxy query by checkQuery.
  const check = (q: unknown, path: string, kind: QueryKind) =>
    typeof q === 'string' ? checkStatement(q, String(c.connector_type), path, push) : checkQuery(q, path, push, kind);
  for (const type of QUERY_LISTS) {
    const list = queries[type];
    const kind: QueryKind = type === 'access' ? 'records' : 'status';
    if (Array.isArray(list)) list.forEach((q, j) => check(q, `${at}/queries/${type}/${j}`, kind));
  }
  if (isObject(queries.identifiers)) {
    for (const [name, list] of Object.entries(queries.identifiers)) {
      const idAt = `${at}/queries/identifiers${pointer(name)}`;
      if (!SNAKE_CASE.test(name)) {
        push(idAt, `identifier name '${name}' is not snake_case; use the DataGrail identifier category in snake_case, e.g. user_id or primary_phone_number`);
      }
      if (Array.isArray(list)) list.forEach((q, j) => check(q, `${idAt}/${j}`, 'records'));
    }
  }
  if (c.tokens !== undefined && c.connector_type !== 'APIProxy' && typeof c.connector_type === 'string') {
    push(`${at}/tokens`, `tokens apply to APIProxy connections only; a ${c.connector_type} connection takes its login from its secret: remove tokens`);
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
