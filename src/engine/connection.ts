import type { Dispatcher } from 'undici';
import { AgentError, ErrorCodes, isAgentError } from '../errors.js';
import { PAGINATION_VARIABLES, type Connection, type QueryType } from '../config/types.js';
import type { Secret, SecretsCache } from '../credentials/source.js';
import type { Logger } from '../logger.js';
import type { ReportSink } from '../storage/sink.js';
import { compileQuery, queriesOf } from './compile.js';
import type { RequestStep } from './render.js';
import type { RetryPolicy } from './send.js';
import { accessConsumer, identifierConsumer, type AccessOutput } from './responses.js';
import { fetchToken, refreshSecretOf, runQuery, type ConnectionRun } from './query.js';
import { makeTokenScope, type TokenCache } from './tokens.js';

/** Hooks for metrics; every argument is free of personal data. */
export interface EngineHooks {
  querySettled?(e: { connection: string; type: QueryType; durationMs: number; outcome: 'ok' | 'error'; status?: number }): void;
  retried?(e: { connection: string; type: QueryType; status?: number }): void;
  timedOut?(e: { connection: string; type: QueryType }): void;
}

/** What a connection run needs; all of it passed in. */
export interface ConnectionContext {
  readonly secrets: SecretsCache;
  readonly logger: Logger;
  readonly dispatchers: { readonly verified: Dispatcher; readonly insecure: () => Dispatcher };
  readonly retry: RetryPolicy;
  readonly jobTimeoutMs: number;
  readonly maxObjectBytes: number;
  readonly steps: readonly RequestStep[];
  readonly hooks: EngineHooks;
  /** Shared (connection-scoped) tokens, reused by every job of the engine. */
  readonly tokens: TokenCache;
}

/** What one connection produced for one query type. */
export interface ConnectionOutput {
  reports?: string[];
  identifiers?: Record<string, string[]>;
}

/** IDENTIFIER_COLLISION when `names` shadow each other: `what` says which kinds collide. */
function collision(clash: readonly string[], what: string, fix: string): AgentError {
  const many = clash.length > 1;
  return new AgentError(
    ErrorCodes.IDENTIFIER_COLLISION,
    `${what} ${clash.map((c) => `'${c}'`).join(', ')} collide${many ? '' : 's'} with ${fix}`,
  );
}

/**
 * Fetch the connection's secret and check that the request's identifiers, the connection's token
 * names and (for paginated queries) the pagination variables do not shadow each other or its keys.
 */
export async function resolveValues(conn: Connection, identifiers: Readonly<Record<string, string>>, secrets: SecretsCache, type?: QueryType): Promise<Secret> {
  const secret = await secrets.get(conn.credentials_location);
  const ids = Object.keys(identifiers);
  const clash = ids.filter((k) => Object.hasOwn(secret, k));
  if (clash.length) {
    throw collision(clash, `identifier name${clash.length > 1 ? 's' : ''}`, `key${clash.length > 1 ? 's' : ''} of the connection's secret; rename the identifier or the secret key`);
  }
  const tokens = Object.keys(conn.tokens ?? {});
  const tokenClash = tokens.filter((t) => Object.hasOwn(secret, t) || Object.hasOwn(identifiers, t));
  if (tokenClash.length) {
    throw collision(tokenClash, `token name${tokenClash.length > 1 ? 's' : ''}`, "a key of the connection's secret or an identifier of the request; rename the token");
  }
  if (type && queriesOf(conn, type).some(({ query }) => query.paginate)) {
    const paged = PAGINATION_VARIABLES.filter((v) => Object.hasOwn(secret, v) || Object.hasOwn(identifiers, v));
    if (paged.length) {
      throw collision(paged, `pagination variable${paged.length > 1 ? 's' : ''}`, "a key of the connection's secret or an identifier of the request, which would fill the same placeholder; rename the key or identifier");
    }
  }
  return secret;
}

/**
 * Run every query of one type for one connection, in order, within one cumulative deadline
 * (job_timeout_seconds: every page, login and retry included). On expiry the in-flight request is
 * aborted and the connection fails with JOB_TIMEOUT.
 */
export async function runConnectionQueries(
  conn: Connection,
  type: QueryType,
  identifiers: Readonly<Record<string, string>>,
  ctx: ConnectionContext,
  opts: { sink?: ReportSink; signal?: AbortSignal } = {},
): Promise<ConnectionOutput> {
  const log = ctx.logger.child({ connection: conn.name, uuid: conn.uuid, type });
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new AgentError(ErrorCodes.JOB_TIMEOUT, `${type} queries did not finish within job_timeout_seconds (${ctx.jobTimeoutMs / 1000} s, cumulative, retries included); raise job_timeout_seconds or speed up the target`)),
    ctx.jobTimeoutMs,
  );
  timer.unref();
  const signal = opts.signal ? AbortSignal.any([deadline.signal, opts.signal]) : deadline.signal;
  try {
    const run: ConnectionRun = {
      conn,
      type,
      identifiers,
      secret: await resolveValues(conn, identifiers, ctx.secrets, type),
      refreshSecret: () => refreshSecretOf(run, ctx.secrets).then(() => resolveValues(conn, identifiers, ctx.secrets, type)),
      tokens: makeTokenScope({
        conn,
        cache: ctx.tokens,
        secret: () => run.secret,
        identifiers,
        fetch: (name, spec, deps, s) => fetchToken(run, name, spec, deps, s),
      }),
      ctx,
      signal,
      log,
    };

    const out: ConnectionOutput = {};
    // identifiers: values per identifier name (every configured name appears, [] when none found).
    const found = new Map(Object.keys(type === 'identifiers' ? (conn.queries.identifiers ?? {}) : {}).map((n) => [n, new Set<string>()]));
    let access: AccessOutput | undefined;
    if (type === 'access') {
      if (!opts.sink) throw new Error('access queries need a report sink');
      access = { sink: opts.sink, connectionUuid: conn.uuid, reports: [] };
      out.reports = access.reports;
    }
    for (const { label, query, identifier } of queriesOf(conn, type)) {
      const consume = access ? accessConsumer(access) : identifier !== undefined ? identifierConsumer(identifier, found.get(identifier)!) : undefined;
      const n = await runQuery(run, compileQuery(query), label, consume);
      if (consume) log.debug({ query: label, records: n }, 'records read');
    }
    if (type === 'identifiers') out.identifiers = Object.fromEntries([...found].map(([n, v]) => [n, [...v]]));
    return out;
  } catch (err) {
    throw signal.aborted && !isAgentError(err) ? signal.reason : err;
  } finally {
    clearTimeout(timer);
  }
}
