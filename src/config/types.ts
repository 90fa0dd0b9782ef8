/** The DataGrailAgentConfig, as validated and frozen by `loadConfig`. */

/** Query types an APIProxy connection can run. */
export type QueryType = 'test' | 'identifiers' | 'access' | 'delete' | 'optout';
/** Request types a job can carry (every query type but `test`). */
export type RequestType = Exclude<QueryType, 'test'>;
export const REQUEST_TYPES: readonly RequestType[] = ['access', 'delete', 'optout', 'identifiers'];

/** A DataGrail capability and the request type it enables. */
export type Capability = 'privacy/access' | 'privacy/delete' | 'privacy/optout' | 'privacy/identifiers';
export const CAPABILITY_FOR: Readonly<Record<RequestType, Capability>> = {
  access: 'privacy/access',
  delete: 'privacy/delete',
  optout: 'privacy/optout',
  identifiers: 'privacy/identifiers',
};

/** A GraphQL request (query field `graphql`, instead of `body`). */
export interface GraphQLRequest {
  /** The GraphQL document, literal text (its braces are GraphQL's, not placeholders). */
  readonly query: string;
  /** Variable name → template; each rendered value is sent as a JSON string. Default {}. */
  readonly variables?: Readonly<Record<string, string>>;
  /** Sent as `operationName` when given. */
  readonly operation_name?: string;
}

/** Pagination styles (query field `paginate.style`). */
export const PAGINATE_STYLES = ['page', 'offset', 'cursor', 'link'] as const;
export type PaginateStyle = (typeof PAGINATE_STYLES)[number];
/** Template names the pagers fill; reserved: a secret key or identifier of the same name is refused. */
export const PAGINATION_VARIABLES = ['page', 'offset', 'page_size', 'cursor'] as const;

/** How an access or identifiers query reads every page (query field `paginate`). */
export interface Paginate {
  readonly style: PaginateStyle;
  /** page: the first page number. Default 1. */
  readonly start?: number;
  /** page, offset: records per page, fills {page_size}. Default 100. */
  readonly size?: number;
  /** page, offset: pointer to the total number of records; stops once that many are read. */
  readonly total?: string;
  /** cursor: pointer to the next cursor in a response. */
  readonly cursor?: string;
  /** Most pages read; one more fails the query with PAGINATION_LIMIT. Default 1000. */
  readonly max_pages: number;
}

/** One HTTP request template (DataGrail's APIProxyQuery) with dsr-agent's optional fields. */
export interface APIProxyQuery {
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Any HTTP method. */
  readonly verb: string;
  /** "true" or "false"; "false" skips TLS certificate verification for this query only. */
  readonly verify_ssl: 'true' | 'false';
  /** Statuses that count as success. Default [200]. */
  readonly valid_response_codes?: readonly number[];
  /** Statuses that are retried with backoff. Default []. */
  readonly fail_retry_response_codes?: readonly number[];
  /** GraphQL request sent as a JSON POST, instead of `body`. */
  readonly graphql?: GraphQLRequest;
  /** Access/identifiers: JSON pointer to the records in the response. Omitted: the body must be a JSON array. */
  readonly records?: string;
  /** JSON pointer → value a valid (2xx, non-204) response must hold. */
  readonly expect?: Readonly<Record<string, unknown>>;
  /** Access/identifiers: read every page. */
  readonly paginate?: Paginate;
}

/** A token fetched before the queries that use it (connection field `tokens`). */
export interface TokenSpec {
  /** The login request. */
  readonly request: APIProxyQuery;
  /** JSON pointer to the token string in the response body. */
  readonly value: string;
  /** JSON pointer to the lifetime in seconds. */
  readonly expires_in?: string;
  /** JSON pointer to the expiry as Unix time in seconds. */
  readonly expires_at?: string;
  /** A fixed lifetime in seconds. */
  readonly ttl_seconds?: number;
}

/** A connection's queries by query type, each a list of `Q`. */
export interface QueriesOf<Q> {
  readonly test?: readonly Q[];
  /** Identifier name (snake_case) → its queries. */
  readonly identifiers?: Readonly<Record<string, readonly Q[]>>;
  readonly access?: readonly Q[];
  readonly delete?: readonly Q[];
  readonly optout?: readonly Q[];
}

/** The queries of an APIProxy connection, by query type. */
export type APIProxyQueries = QueriesOf<APIProxyQuery>;
/** The queries of a database or SSH connection: SQL statements or command lines. */
export type StatementQueries = QueriesOf<string>;

/** Connector types this version runs, each a module in src/connectors/. */
export const RUNNABLE_CONNECTOR_TYPES = ['APIProxy', 'Postgres', 'MySQL', 'Redshift', 'SSH'] as const;
/** DataGrail connector types a config may hold (validated, loaded) that this version does not run (CONNECTOR_UNSUPPORTED). */
export const ACCEPTED_CONNECTOR_TYPES = ['Snowflake', 'BigQuery', 'SQLServer', 'OracleDB'] as const;
/** Every connector_type the config accepts. */
export const CONNECTOR_TYPES = [...RUNNABLE_CONNECTOR_TYPES, ...ACCEPTED_CONNECTOR_TYPES] as const;
export type ConnectorType = (typeof CONNECTOR_TYPES)[number];

/** What every connection has, whatever its type. */
interface ConnectionBase {
  readonly name: string;
  readonly uuid: string;
  readonly capabilities: readonly Capability[];
  /** "live" connections take part in requests; "test" ones only when named explicitly. */
  readonly mode: 'live' | 'test';
  /** Where the connection's secret lives (an ARN, a parameter name, a JSONFile key). */
  readonly credentials_location: string;
}

/** An HTTP API connection (DataGrail's APIProxy). */
export interface APIProxyConnection extends ConnectionBase {
  readonly connector_type: 'APIProxy';
  readonly queries: APIProxyQueries;
  /** Token name → how to fetch it; `{name}` fills templates. Default {}. */
  readonly tokens?: Readonly<Record<string, TokenSpec>>;
}

/** A database or SSH connection: its queries are statements (SQL with %(name)s, or command lines with {name}). */
export interface StatementConnection extends ConnectionBase {
  readonly connector_type: Exclude<ConnectorType, 'APIProxy'>;
  readonly queries: StatementQueries;
}

/** A connection: one system holding personal data. */
export type Connection = APIProxyConnection | StatementConnection;

/** Credentials manager settings (platform.credentials_manager). */
export interface CredentialsManagerConfig {
  readonly provider: 'AWSSecretsManager' | 'AWSSSMParameterStore' | 'JSONFile' | 'AzureKeyVault' | 'GCP';
  readonly options?: Readonly<Record<string, unknown>>;
}

/** Result storage settings (platform.storage_manager). */
export interface StorageManagerConfig {
  readonly provider: 'AWSS3' | 'Local' | 'AzureBlob' | 'GCPCloudStore' | 'BackblazeB2';
  readonly options?: Readonly<Record<string, unknown>>;
}

/** dsr-agent extensions to DataGrail's config (the `agent` object). Every field has a default. */
export interface AgentOptions {
  /** Connections one job works on at once. Default 8. */
  readonly connection_concurrency: number;
  /** Jobs the agent runs at once. Default 4. */
  readonly job_concurrency: number;
  /** Largest single object accepted in an access response, in bytes. Default 67108864 (64 MiB). */
  readonly max_object_bytes: number;
  /** How long a secret is reused, in seconds; 0 disables the cache. Default 300. */
  readonly secret_cache_ttl_seconds: number;
  /** Retries after a network error or a fail_retry_response_codes status. Default 3. */
  readonly retries: number;
  /** First retry delay in ms (doubles per attempt, with jitter). Default 1000. */
  readonly retry_min_delay_ms: number;
  /** Cap on one retry delay in ms; at least retry_min_delay_ms. Default 30000. */
  readonly retry_max_delay_ms: number;
  /** How often the service runs the test queries for readiness, in seconds. Default 60. */
  readonly readiness_interval_seconds: number;
  /** How long running jobs may finish after a shutdown signal, in seconds. Default 30. */
  readonly shutdown_grace_seconds: number;
  /** Redis queue: seconds a crashed replica's job stays locked before another takes it over. Default 30. */
  readonly job_lock_seconds: number;
  /** Redis queue: the BullMQ queue name shared by one deployment's replicas. Default "dsr-agent". */
  readonly queue_name: string;
  /** Require a bearer token (as /api/v1 does) on GET /metrics. Default false. */
  readonly metrics_require_auth: boolean;
  /** Service: the `aud` of the access tokens this deployment issues and accepts; give each deployment that shares an API client secret its own. Default "dsr-agent-api". */
  readonly token_audience: string;
  /** Service: seconds a client has to send a whole request (headers and body) before a 408. Default 30. */
  readonly http_request_timeout_seconds: number;
  /** Service: most open client connections at once; more are refused. Default 1024. */
  readonly http_max_connections: number;
  /** Service: days a finished job (its record and its local reports) is kept; 0 keeps them forever. Default 30. */
  readonly retention_days: number;
}

/** Request source types, each a module in src/sources/. */
export const REQUEST_SOURCE_TYPES = ['Dastra', 'HTTP'] as const;
export type RequestSourceType = (typeof REQUEST_SOURCE_TYPES)[number];

/** A privacy platform the service polls for requests (top-level `request_sources`). */
export interface RequestSourceConfig {
  readonly name: string;
  readonly type: RequestSourceType;
  readonly credentials_location: string;
  /** Header templates filled from the secret (and tokens). Default {}. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly tokens?: Readonly<Record<string, TokenSpec>>;
  /** The adapter's settings, checked by its module. Default {}. */
  readonly options: Readonly<Record<string, unknown>>;
}

/** The whole agent config. */
export interface AgentConfig {
  readonly connections: readonly Connection[];
  /** Platforms to poll for requests (service only). Default []. */
  readonly request_sources?: readonly RequestSourceConfig[];
  readonly customer_domain?: string;
  readonly datagrail_agent_credentials_location?: string;
  readonly datagrail_credentials_location?: string;
  readonly platform: {
    readonly credentials_manager: CredentialsManagerConfig;
    readonly storage_manager?: StorageManagerConfig;
  };
  readonly redis_url?: string;
  /** Cumulative timeout per query type per connection, retries included. Default 300. */
  readonly job_timeout_seconds: number;
  /** Optional: where a finished job's result is POSTed (service only). */
  readonly callback_url?: string;
  /** dsr-agent extensions, defaults applied (always present). */
  readonly agent: AgentOptions;
}

/** A loaded config and where it came from. */
export interface LoadedConfig {
  readonly config: AgentConfig;
  /** Folder that relative paths in the config (JSONFile filename) resolve against. */
  readonly baseDir: string;
  /** Human description of the source, e.g. the file path or "DATAGRAIL_AGENT_CONFIG". */
  readonly source: string;
}
