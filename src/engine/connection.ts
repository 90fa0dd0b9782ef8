import type { Dispatcher } from 'undici';
import { AgentError, ErrorCodes, isAgentError } from '../errors.js';
import type { APIProxyQuery, Connection, QueryType } from '../config/types.js';
import type { Secret, SecretsCache } from '../credentials/source.js';
import type { Logger } from '../logger.js';
import type { ReportSink } from '../storage/sink.js';
import { compileQuery, queriesOf } from './compile.js';
import { renderRequest, type HttpRequest, type RequestStep } from './render.js';
import { sendWithRetry, type RetryPolicy } from './send.js';
import { consumeStatusBody, writeAccessReports, collectIdentifiers, type AccessOutput } from './responses.js';

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
}

/** What one connection produced for one query type. */
export interface ConnectionOutput {
  reports?: string[];
  identifiers?: Record<string, string[]>;
}

/**
 * A valid status that carries no data: 204, or a non-2xx the config lists as valid (DataGrail's advice
 * is to add 404 to valid_response_codes when the subject does not exist). Its body is not parsed.
 */
export function isNoData(status: number): boolean {
  return status === 204 || status < 200 || status >= 300;
}

/** Fetch the connection's secret and check the request's identifiers do not shadow its keys. */
export async function resolveValues(conn: Connection, identifiers: Readonly<Record<string, string>>, secrets: SecretsCache): Promise<Secret> {
  const secret = await secrets.get(conn.credentials_location);
  const clash = Object.keys(identifiers).filter((k) => Object.hasOwn(secret, k));
  if (clash.length) {
    throw new AgentError(
      ErrorCodes.IDENTIFIER_COLLISION,
      `identifier name${clash.length > 1 ? 's' : ''} ${clash.map((c) => `'${c}'`).join(', ')} collide${clash.length > 1 ? '' : 's'} with key${clash.length > 1 ? 's' : ''} of the connection's secret; rename the identifier or the secret key`,
    );
  }
  return secret;
}

/**
 * Run every query of one type for one connection, in order, within one cumulative deadline
 * (job_timeout_seconds, retries included). On expiry the in-flight request is aborted and the
 * connection fails with JOB_TIMEOUT.
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
    let secret = await resolveValues(conn, identifiers, ctx.secrets);
    const run = async (query: APIProxyQuery, label: string, handle: (res: Dispatcher.ResponseData) => Promise<void>) => {
      const started = performance.now();
      const q = compileQuery(query);
      // Bindings passed per line rather than a child logger per query: child() runs redaction setup,
      // which showed in the engine's profile.
      const where = { query: label, method: q.method, origin: q.origin };
      let refreshed = false;
      for (;;) {
        let req: HttpRequest = renderRequest(q, { identifiers, secrets: secret });
        for (const step of ctx.steps) req = await step(req, signal);
        try {
          const res = await sendWithRetry(req, {
            dispatcher: query.verify_ssl === 'false' ? ctx.dispatchers.insecure() : ctx.dispatchers.verified,
            valid: q.valid,
            retryOn: q.retryOn,
            policy: ctx.retry,
            signal,
            onRetry: (f) => {
              log.warn({ ...where, attempt: f.attempt, reason: f.reason, delayMs: Math.round(f.delayMs) }, 'retrying query');
              ctx.hooks.retried?.({ connection: conn.name, type, status: f.status });
            },
          });
          await handle(res);
          const durationMs = performance.now() - started;
          if (log.isLevelEnabled('info')) log.info({ ...where, status: res.statusCode, ms: Math.round(durationMs) }, 'query succeeded');
          ctx.hooks.querySettled?.({ connection: conn.name, type, durationMs, outcome: 'ok', status: res.statusCode });
          return;
        } catch (err) {
          const e = signal.aborted ? (signal.reason ?? err) : err;
          // A 401/403 may mean the secret was rotated: refresh it once and try again.
          if (!refreshed && isAgentError(e, ErrorCodes.HTTP_STATUS) && (e.status === 401 || e.status === 403)) {
            refreshed = true;
            ctx.secrets.invalidate(conn.credentials_location);
            secret = await resolveValues(conn, identifiers, ctx.secrets);
            log.warn({ ...where, status: e.status }, 'target refused the credentials; refreshed the secret and retrying once');
            continue;
          }
          ctx.hooks.querySettled?.({ connection: conn.name, type, durationMs: performance.now() - started, outcome: 'error', status: (e as AgentError).status });
          if (isAgentError(e, ErrorCodes.JOB_TIMEOUT)) ctx.hooks.timedOut?.({ connection: conn.name, type });
          throw e;
        }
      }
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
      await run(query, label, async (res) => {
        if ((!access && identifier === undefined) || isNoData(res.statusCode)) return consumeStatusBody(res.body, log);
        if (access) {
          const n = await writeAccessReports(res.body, access, ctx.maxObjectBytes, log);
          log.debug({ objects: n }, 'access objects written');
        } else {
          const n = await collectIdentifiers(res.body, identifier!, found.get(identifier!)!, ctx.maxObjectBytes, log);
          log.debug({ found: n }, 'identifier values found');
        }
      });
    }
    if (type === 'identifiers') out.identifiers = Object.fromEntries([...found].map(([n, v]) => [n, [...v]]));
    return out;
  } catch (err) {
    throw signal.aborted && !isAgentError(err) ? signal.reason : err;
  } finally {
    clearTimeout(timer);
  }
}
