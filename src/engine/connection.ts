import { AgentError, ErrorCodes, isAgentError } from '../errors.js';
import type { Connection, QueryType } from '../config/types.js';
import type { SecretsCache } from '../credentials/source.js';
import type { Logger } from '../logger.js';
import type { ReportSink } from '../storage/sink.js';
import type { ConnectorRegistry } from '../connectors/index.js';
import { statementsOf, type RunStatement } from '../connectors/types.js';
import { makeMask, type Mask } from './mask.js';
import type { RetryPolicy } from './send.js';
import { accessConsumer, identifierConsumer, type AccessOutput } from './responses.js';
import { ReportList, type ReportSummary } from './report-list.js';

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
  readonly retry: RetryPolicy;
  readonly jobTimeoutMs: number;
  readonly maxObjectBytes: number;
  readonly hooks: EngineHooks;
  /** The connector of each connector_type. */
  readonly connectors: ConnectorRegistry;
}

/** Reports a failed access run had already written, by its error (so none is left that no job lists). */
const partial = new WeakMap<object, ReportSummary>();

/** The reports written before `err` failed an access run; undefined when none. */
export function partialReportsOf(err: unknown): ReportSummary | undefined {
  return typeof err === 'object' && err !== null ? partial.get(err) : undefined;
}

/** What one connection produced for one query type: access reports (a summary whose size is bounded), or identifiers. */
export interface ConnectionOutput extends Partial<ReportSummary> {
  identifiers?: Record<string, string[]>;
}

/**
 * Run every query of one type for one connection, in order, within one cumulative deadline
 * (job_timeout_seconds: every statement, page, login and retry included), through the connection's
 * connector. On expiry the connector stops the work in flight and the connection fails with JOB_TIMEOUT.
 * Reports are numbered and identifiers collected here, whatever the connector type.
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
  const started = performance.now();
  let failureReported = false;
  let written: ReportList | undefined;
  try {
    const connector = await ctx.connectors.get(conn.connector_type);
    const secret = await ctx.secrets.get(conn.credentials_location);
    let mask: Mask | undefined;
    const out: ConnectionOutput = {};
    // identifiers: values per identifier name (every configured name appears, [] when none found).
    const found = new Map(Object.keys(type === 'identifiers' ? (conn.queries.identifiers ?? {}) : {}).map((n) => [n, new Set<string>()]));
    let access: AccessOutput | undefined;
    if (type === 'access') {
      if (!opts.sink) throw new Error('access queries need a report sink');
      written = new ReportList();
      access = { sink: opts.sink, connectionUuid: conn.uuid, reports: written };
    }
    const statements: RunStatement[] = statementsOf(conn, type).map((st) => ({
      ...st,
      consume: access ? accessConsumer(access) : st.identifier !== undefined ? identifierConsumer(st.identifier, found.get(st.identifier)!) : undefined,
    }));
    await connector.run({
      conn,
      type,
      identifiers,
      secret,
      signal,
      log,
      retry: ctx.retry,
      maxObjectBytes: ctx.maxObjectBytes,
      // Built on first use: most runs never mask anything, and the pattern is compiled per run.
      mask: (text) => (mask ??= makeMask([...Object.values(identifiers), ...Object.values(secret)]))(text),
      statements,
      settled: (e) => {
        if (e.outcome === 'error') failureReported = true;
        ctx.hooks.querySettled?.({ connection: conn.name, type, durationMs: e.durationMs, outcome: e.outcome ?? 'ok', status: e.status });
      },
    });
    if (type === 'identifiers') out.identifiers = Object.fromEntries([...found].map(([n, v]) => [n, [...v]]));
    return written ? { ...out, ...written.summary() } : out;
  } catch (err) {
    const e = signal.aborted && !isAgentError(err) ? signal.reason : err;
    if (written?.length && typeof e === 'object' && e !== null) partial.set(e, written.summary());
    if (isAgentError(e, ErrorCodes.JOB_TIMEOUT)) ctx.hooks.timedOut?.({ connection: conn.name, type });
    // A connector that reports only its successes (databases, SSH) leaves the failure to be reported here.
    if (!failureReported) {
      ctx.hooks.querySettled?.({ connection: conn.name, type, durationMs: performance.now() - started, outcome: 'error' });
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
