/**
 * The connector seam: what the engine asks of a connector type. The engine owns the job, the
 * cumulative deadline, the secret, report numbering, identifier collection and metrics; a connector
 * only runs one query type's statements for one connection and hands each record to its consumer.
 * Adding a type is one module implementing {@link Connector} plus its config rules.
 */
import type { APIProxyQuery, Connection, QueryType } from '../config/types.js';
import type { Secret } from '../credentials/source.js';
import type { Logger } from '../logger.js';
import type { Mask } from '../engine/mask.js';
import type { RecordConsumer } from '../engine/read.js';
import type { HttpRequest } from '../engine/render.js';
import { queriesOf } from '../engine/compile.js';
import type { RetryPolicy } from '../engine/send.js';

/** One statement (SQL text or SSH command line) of a run, in order, with where its records go. */
export interface RunStatement {
  /** `access[0]`, `identifiers.user_id[1]`, …: what logs may show. */
  readonly label: string;
  /** The statement as written in the config (with `%(name)s` or `{name}` placeholders); an APIProxy query's url. */
  readonly text: string;
  /** APIProxy: the query object. */
  readonly query?: APIProxyQuery;
  /** identifiers queries: the identifier the records are keyed by. */
  readonly identifier?: string;
  /** access and identifiers: receives each record (a row, or an object of the command's JSON output). */
  readonly consume?: RecordConsumer;
}

/** One job's run of one connection for one query type. */
export interface ConnectorRun {
  readonly conn: Connection;
  readonly type: QueryType;
  readonly identifiers: Readonly<Record<string, string>>;
  /** The connection's secret (connection settings: host, user, password, …). */
  readonly secret: Secret;
  /**
   * Aborted at job_timeout_seconds (reason: AgentError JOB_TIMEOUT) or on shutdown (CANCELLED).
   * A connector cancels the running statement on the server, then throws `signal.reason`.
   */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Backoff for connection failures that retrying can fix. */
  readonly retry: RetryPolicy;
  readonly maxObjectBytes: number;
  /** Masks the request's identifier and secret values in text a server sent back. */
  readonly mask: Mask;
  /** The statements of `type`, in run order. */
  readonly statements: readonly RunStatement[];
  /**
   * Report each statement (or HTTP query) that settled, for metrics; no personal data. A connector
   * that reports only successes leaves the failure to the engine, which reports one when `run` throws.
   */
  readonly settled?: (e: { readonly label: string; readonly durationMs: number; readonly outcome?: 'ok' | 'error'; readonly status?: number }) => void;
}

/** What --dry-run shows for one statement; sends nothing. */
export interface PlannedStatement {
  readonly query: string;
  /** The statement as the driver receives it (`$1`, `?`), or the command line with values masked. */
  readonly statement?: string;
  /** Bound parameters by name, values masked. */
  readonly parameters?: Readonly<Record<string, string>>;
  /** APIProxy: the HTTP request, secrets masked. */
  readonly request?: HttpRequest;
  /** Why this statement could not be planned. */
  readonly error?: { readonly code: string; readonly message: string };
}

/** A connector type. */
export interface Connector {
  /** Run `run.statements` in order. delete/optout statements run in one transaction where the type has them. Throws AgentError. */
  run(run: ConnectorRun): Promise<void>;
  /** What `run` would send, identifier values masked as `****`; sends nothing. */
  plan(run: Pick<ConnectorRun, 'conn' | 'type' | 'identifiers' | 'secret' | 'statements'>): PlannedStatement[];
  /** Close pools and clients (shutdown). */
  close(): Promise<void>;
}

/** A connection's statements of one type, in run order, without consumers (the engine adds them for a run). */
export function statementsOf(conn: Connection, type: QueryType): RunStatement[] {
  return queriesOf(conn, type).map(({ label, query, identifier }) => ({
    label,
    text: typeof query === 'string' ? query : query.url,
    ...(typeof query !== 'string' && { query }),
    ...(identifier !== undefined && { identifier }),
  }));
}
