/**
 * Turn a config that passed every check into the `AgentConfig` the rest of the agent reads:
 * defaults applied, aliases resolved, values normalised, and the whole tree deep-frozen.
 */
import type {
  AgentConfig,
  AgentOptions,
  APIProxyQueries,
  APIProxyQuery,
  Capability,
  Connection,
  ConnectorType,
  StatementQueries,
  CredentialsManagerConfig,
  Paginate,
  RequestSourceConfig,
  StorageManagerConfig,
  TokenSpec,
} from './types.js';

/** Defaults of the `agent` object (the same values as the schema's `default`s). */
export const DEFAULT_AGENT_OPTIONS: AgentOptions = Object.freeze({
  connection_concurrency: 8,
  job_concurrency: 4,
  max_object_bytes: 64 * 1024 * 1024, // 64 MiB
  secret_cache_ttl_seconds: 300, // 5 min
  retries: 3,
  retry_min_delay_ms: 1000, // 1 s
  retry_max_delay_ms: 30 * 1000, // 30 s
  readiness_interval_seconds: 60,
  shutdown_grace_seconds: 30,
  job_lock_seconds: 30,
  queue_name: 'dsr-agent',
  metrics_require_auth: false,
  token_audience: 'dsr-agent-api',
  http_request_timeout_seconds: 30,
  http_max_connections: 1024,
  retention_days: 30,
});

/** Default of job_timeout_seconds: 5 minutes per query type per connection, as DataGrail's agent. */
export const DEFAULT_JOB_TIMEOUT_SECONDS = 300;
/** Default valid_response_codes of a query. */
export const DEFAULT_VALID_RESPONSE_CODES: readonly number[] = Object.freeze([200]);

/** Defaults of a query's `paginate` (the same values as the schema's `default`s). */
export const DEFAULT_PAGINATE = Object.freeze({ start: 1, size: 100, max_pages: 1000 });

/** Freeze `value` and everything reachable from it; returns it typed as deeply readonly. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

type Raw = Record<string, unknown>;

/** Copy `keys` of `from` that are present, in that order. */
function pick(from: Raw, keys: readonly string[]): Raw {
  const out: Raw = {};
  for (const k of keys) if (from[k] !== undefined) out[k] = from[k];
  return out;
}

function normalizeQuery(q: Raw): APIProxyQuery {
  return {
    url: q.url as string,
    ...(q.headers !== undefined && { headers: { ...(q.headers as Record<string, string>) } }),
    ...(q.body !== undefined && { body: q.body as string }),
    verb: (q.verb as string).toUpperCase(),
    verify_ssl: String(q.verify_ssl) as 'true' | 'false',
    valid_response_codes: [...((q.valid_response_codes as number[] | undefined) ?? DEFAULT_VALID_RESPONSE_CODES)],
    fail_retry_response_codes: [...((q.fail_retry_response_codes as number[] | undefined) ?? [])],
    ...(q.graphql !== undefined && { graphql: structuredClone(q.graphql) as APIProxyQuery['graphql'] }),
    ...(q.records !== undefined && { records: q.records as string }),
    ...(q.expect !== undefined && { expect: structuredClone(q.expect) as Record<string, unknown> }),
    ...(q.paginate !== undefined && { paginate: normalizePaginate(q.paginate as Raw) }),
  };
}

function normalizePaginate(p: Raw): Paginate {
  const style = p.style as Paginate['style'];
  const sized = style === 'page' || style === 'offset';
  return {
    style,
    ...(style === 'page' && { start: (p.start as number | undefined) ?? DEFAULT_PAGINATE.start }),
    ...(sized && { size: (p.size as number | undefined) ?? DEFAULT_PAGINATE.size }),
    ...pick(p, ['total', 'cursor']),
    max_pages: (p.max_pages as number | undefined) ?? DEFAULT_PAGINATE.max_pages,
  };
}

function normalizeToken(t: Raw): TokenSpec {
  return {
    request: normalizeQuery(t.request as Raw),
    value: t.value as string,
    ...pick(t, ['expires_in', 'expires_at', 'ttl_seconds']),
  };
}

function normalizeQueries(q: Raw, apiProxy: boolean): APIProxyQueries | StatementQueries {
  // Statements (SQL, command lines) are kept as written.
  const normalizeList = (list: unknown): unknown[] => (apiProxy ? (list as Raw[]).map(normalizeQuery) : [...(list as string[])]);
  const out: Record<string, unknown> = {};
  for (const type of ['test', 'access', 'delete', 'optout'] as const) {
    if (q[type] !== undefined) out[type] = normalizeList(q[type]);
  }
  if (q.identifiers !== undefined) {
    out.identifiers = Object.fromEntries(
      Object.entries(q.identifiers as Raw).map(([name, list]) => [name, normalizeList(list)]),
    );
  }
  return out as APIProxyQueries | StatementQueries;
}

function normalizeConnection(c: Raw): Connection {
  return {
    name: c.name as string,
    uuid: c.uuid as string,
    capabilities: [...(c.capabilities as Capability[])],
    mode: c.mode as 'live' | 'test',
    connector_type: c.connector_type as ConnectorType,
    queries: normalizeQueries(c.queries as Raw, c.connector_type === 'APIProxy'),
    credentials_location: (c.credentials_location ?? c.credentials_arn) as string,
    ...(c.tokens !== undefined && {
      tokens: Object.fromEntries(Object.entries(c.tokens as Raw).map(([name, t]) => [name, normalizeToken(t as Raw)])),
    }),
  } as Connection;
}

function normalizeProvider<T extends CredentialsManagerConfig | StorageManagerConfig>(p: Raw): T {
  return { provider: p.provider, ...(p.options !== undefined && { options: structuredClone(p.options) }) } as T;
}

/**
 * Build the frozen AgentConfig from a raw config that has no problems. Only known fields are
 * copied; `options` objects of the providers are deep-copied as given.
 */
export function normalizeConfig(raw: Raw): AgentConfig {
  const platform = raw.platform as Raw;
  const config: AgentConfig = {
    connections: (raw.connections as Raw[]).map(normalizeConnection),
    ...(raw.request_sources !== undefined && {
      request_sources: (raw.request_sources as Raw[]).map((r) => ({
        name: r.name as string,
        type: r.type as RequestSourceConfig['type'],
        credentials_location: r.credentials_location as string,
        ...(r.headers !== undefined && { headers: { ...(r.headers as Record<string, string>) } }),
        ...(r.tokens !== undefined && {
          tokens: Object.fromEntries(Object.entries(r.tokens as Raw).map(([name, t]) => [name, normalizeToken(t as Raw)])),
        }),
        options: structuredClone((r.options as Raw | undefined) ?? {}),
      })),
    }),
    ...pick(raw, ['customer_domain', 'datagrail_agent_credentials_location', 'datagrail_credentials_location']),
    platform: {
      credentials_manager: normalizeProvider<CredentialsManagerConfig>(platform.credentials_manager as Raw),
      ...(platform.storage_manager !== undefined && {
        storage_manager: normalizeProvider<StorageManagerConfig>(platform.storage_manager as Raw),
      }),
    },
    ...pick(raw, ['redis_url']),
    job_timeout_seconds: (raw.job_timeout_seconds as number | undefined) ?? DEFAULT_JOB_TIMEOUT_SECONDS,
    ...pick(raw, ['callback_url']),
    agent: { ...DEFAULT_AGENT_OPTIONS, ...((raw.agent as Partial<AgentOptions> | undefined) ?? {}) },
  };
  return deepFreeze(config);
}
