/**
 * Every error the agent raises, with a stable `code`. Match on `code`, not on `instanceof`:
 * codes are part of the public contract (CLI `--json`, job API results, logs).
 *
 * Messages say what went wrong and what to do about it. They never carry a secret value or
 * an identifier value.
 */

/** Stable error codes; each key equals its value. */
export const ErrorCodes = {
  /** The config does not match the schema or a semantic rule. */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** No config was given, or its file cannot be read. */
  CONFIG_NOT_FOUND: 'CONFIG_NOT_FOUND',
  /** The config is not valid JSON. */
  CONFIG_PARSE: 'CONFIG_PARSE',
  /** A template does not parse (unbalanced brace, bad placeholder name). */
  TEMPLATE_INVALID: 'TEMPLATE_INVALID',
  /** A template names a variable that neither the identifiers nor the secret provides. */
  TEMPLATE_MISSING_VARIABLE: 'TEMPLATE_MISSING_VARIABLE',
  /** An identifier value cannot be used where it lands (e.g. CR/LF in a header). */
  IDENTIFIER_INVALID: 'IDENTIFIER_INVALID',
  /** A request's identifier name collides with a key of the connection's secret. */
  IDENTIFIER_COLLISION: 'IDENTIFIER_COLLISION',
  /** The secret does not exist at the credentials location. */
  SECRET_NOT_FOUND: 'SECRET_NOT_FOUND',
  /** The credentials manager refused access to the secret. */
  SECRET_ACCESS_DENIED: 'SECRET_ACCESS_DENIED',
  /** The secret exists but is not a JSON object. */
  SECRET_INVALID: 'SECRET_INVALID',
  /** The credentials manager failed for another reason (network, throttling, misconfiguration). */
  SECRET_PROVIDER_ERROR: 'SECRET_PROVIDER_ERROR',
  /** The target answered with a status outside valid_response_codes. */
  HTTP_STATUS: 'HTTP_STATUS',
  /** The request failed at the network level (refused, reset, DNS, TLS) after its retries. */
  HTTP_NETWORK: 'HTTP_NETWORK',
  /** An access or identifiers response is not a JSON array of objects. */
  RESPONSE_MALFORMED: 'RESPONSE_MALFORMED',
  /** A response with a valid status does not hold a value its query's `expect` requires. */
  RESPONSE_UNEXPECTED: 'RESPONSE_UNEXPECTED',
  /** A GraphQL response carries a non-empty top-level `errors` array (even with status 200). */
  GRAPHQL_ERRORS: 'GRAPHQL_ERRORS',
  /** A paginated query needed more than its max_pages pages. */
  PAGINATION_LIMIT: 'PAGINATION_LIMIT',
  /** A connection token could not be fetched (login refused, or no token where `value` points). */
  TOKEN_FAILED: 'TOKEN_FAILED',
  /** A database or SSH server could not be reached or refused the login (after retries where they help). */
  CONNECT_FAILED: 'CONNECT_FAILED',
  /** A database statement failed; the message carries the server's code (SQLSTATE, MySQL errno), never parameters. */
  DATABASE_ERROR: 'DATABASE_ERROR',
  /** An SSH command exited with a non-zero status. */
  COMMAND_FAILED: 'COMMAND_FAILED',
  /** The SSH server's host key is not the pinned one, or no key is pinned. */
  HOST_KEY_REJECTED: 'HOST_KEY_REJECTED',
  /** The connection's connector_type is accepted by the config but not run by this version. */
  CONNECTOR_UNSUPPORTED: 'CONNECTOR_UNSUPPORTED',
  /** A single object in an access response is larger than the configured cap. */
  RESPONSE_OBJECT_TOO_LARGE: 'RESPONSE_OBJECT_TOO_LARGE',
  /** The cumulative job_timeout_seconds for a query type expired. */
  JOB_TIMEOUT: 'JOB_TIMEOUT',
  /** A connection named in a request does not exist in the config. */
  CONNECTION_NOT_FOUND: 'CONNECTION_NOT_FOUND',
  /** The connection lacks the capability or queries for the requested type. */
  CAPABILITY_MISSING: 'CAPABILITY_MISSING',
  /** Writing a report to storage failed. */
  STORAGE_ERROR: 'STORAGE_ERROR',
  /** A client job id already names a job with another type, other identifiers or other connections. */
  JOB_CONFLICT: 'JOB_CONFLICT',
  /**
   * The job queue cannot record jobs right now (the journal's disk refuses writes, or Redis does not
   * answer); retryable: the API answers 503 with Retry-After and accepts nothing it cannot record.
   */
  QUEUE_UNAVAILABLE: 'QUEUE_UNAVAILABLE',
  /** Another running instance owns the data directory (DSR_AGENT_DATA_DIR). */
  DATA_DIR_LOCKED: 'DATA_DIR_LOCKED',
  /** Bad command-line usage or a bad API request. */
  BAD_REQUEST: 'BAD_REQUEST',
  /** A bug or an unexpected failure; the log at DEBUG has the details. */
  INTERNAL: 'INTERNAL',
  /** The work was cancelled (shutdown). */
  CANCELLED: 'CANCELLED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** One problem found in a config: a JSON pointer and what to do about it. */
export interface ConfigProblem {
  /** JSON pointer into the config, e.g. `/connections/0/queries/test`. */
  path: string;
  /** What is wrong and how to fix it. */
  message: string;
}

/** The agent's error type. `code` is stable; `message` is safe to show and log. */
export class AgentError extends Error {
  override name = 'AgentError';
  readonly code: ErrorCode;
  /** For CONFIG_INVALID: every problem found, not only the first. */
  readonly problems?: readonly ConfigProblem[];
  /** For HTTP_STATUS (and TOKEN_FAILED from a refused login): the status the target answered. */
  readonly status?: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; problems?: readonly ConfigProblem[]; status?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.problems) this.problems = options.problems;
    if (options.status !== undefined) this.status = options.status;
  }

  /** The shape used in CLI `--json` output and job results. */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** True when `err` is an AgentError with the given code (or any code when omitted). */
export function isAgentError(err: unknown, code?: ErrorCode): err is AgentError {
  return err instanceof AgentError && (code === undefined || err.code === code);
}

/**
 * `err` as an AgentError: itself when it is one, else INTERNAL wrapping it as `cause`. The message
 * names only the error's class, since a foreign message may carry personal data.
 */
export function asAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  const kind = err instanceof Error ? err.name : 'error';
  return new AgentError(ErrorCodes.INTERNAL, `unexpected ${kind}; run with LOGLEVEL=DEBUG for details`, { cause: err });
}

/** Build a CONFIG_INVALID error listing every problem, one per line. */
export function makeConfigError(problems: readonly ConfigProblem[], source = 'config'): AgentError {
  const lines = problems.map((p) => `  ${p.path || '/'}: ${p.message}`);
  const n = problems.length;
  return new AgentError(
    ErrorCodes.CONFIG_INVALID,
    `${source} is invalid (${n} problem${n === 1 ? '' : 's'}):\n${lines.join('\n')}`,
    { problems },
  );
}

/**
 * The `code` of an error or of one of its causes (a socket's `ECONNREFUSED`, a server's SQLSTATE),
 * skipping `skip` (undici wraps socket errors in UND_ERR_SOCKET). Undefined when none has one.
 */
export function errorCodeOf(err: unknown, skip?: string): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== skip) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
