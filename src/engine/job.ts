import pLimit from 'p-limit';
import { NAME_PATTERN } from '../names.js';
import { AgentError, ErrorCodes, asAgentError } from '../errors.js';
import type { AgentConfig, RequestType } from '../config/types.js';
import type { ReportSink } from '../storage/sink.js';
import { partialReportsOf, runConnectionQueries, type ConnectionContext } from './connection.js';
import { selectConnections } from './select.js';

/** A data subject request for one person. */
export interface JobRequest {
  readonly type: RequestType;
  /** Identifier name (snake_case) → value, e.g. `{ email: "peter@initech.com" }`. */
  readonly identifiers: Readonly<Record<string, string>>;
  /** Connection names or uuids; all live connections with the capability when omitted. */
  readonly connections?: readonly string[];
}

/** The outcome for one connection. Same shape in CLI `--json` and the job API. */
export interface ConnectionResult {
  uuid: string;
  name: string;
  status: 'succeeded' | 'failed' | 'skipped';
  /**
   * Access: report locations in order, at most REPORT_LIST_CAP (1000) of them; with report_count and
   * report_location every report is named (`<report_location>/report_<n>.csv`).
   */
  reports?: string[];
  /** Access: how many reports were written (also on a failed connection that wrote some). */
  report_count?: number;
  /** Access: the folder or key prefix of the reports (file path, s3://…, gs://…, azure://…); absent with no report. */
  report_location?: string;
  /** Access: true when `reports` lists fewer than `report_count` locations. */
  reports_truncated?: true;
  /** Identifiers: name → distinct values found. */
  identifiers?: Record<string, string[]>;
  error?: { code: string; message: string };
  /** Why a connection was skipped. */
  reason?: string;
  duration_ms?: number;
}

/** The outcome of a job. */
export interface JobResult {
  type: RequestType;
  status: 'succeeded' | 'partial' | 'failed';
  connections: ConnectionResult[];
}

/** Progress events for a terminal UI; no personal data. */
export interface JobProgress {
  onStart?(connection: { uuid: string; name: string }): void;
  onDone?(result: ConnectionResult): void;
}

/** Options for {@link runJob}. */
export interface RunJobOptions {
  /** Where access reports go; required for access jobs. */
  sink?: ReportSink;
  /** Cancels the whole job (shutdown). */
  signal?: AbortSignal;
  progress?: JobProgress;
}

const NAME = NAME_PATTERN;

/** Check a request's identifiers: a non-empty map of snake_case names to strings. Throws BAD_REQUEST. */
export function assertIdentifiers(identifiers: unknown): asserts identifiers is Record<string, string> {
  if (!identifiers || typeof identifiers !== 'object' || Array.isArray(identifiers) || Object.keys(identifiers).length === 0) {
    throw new AgentError(ErrorCodes.BAD_REQUEST, 'identifiers must be a non-empty object of name → value, e.g. {"email": "peter@initech.com"}');
  }
  for (const [k, v] of Object.entries(identifiers)) {
    if (!NAME.test(k)) throw new AgentError(ErrorCodes.BAD_REQUEST, `identifier name '${k.slice(0, 64)}' must be snake_case (letters, digits, underscores), e.g. user_id`);
    if (typeof v !== 'string' || v.length === 0) throw new AgentError(ErrorCodes.BAD_REQUEST, `identifier '${k}' must be a non-empty string`);
  }
}

/** Overall status: failed when every connection that ran failed, partial when some did. */
export function jobStatus(results: readonly ConnectionResult[]): JobResult['status'] {
  const ran = results.filter((r) => r.status !== 'skipped');
  const failed = ran.filter((r) => r.status === 'failed').length;
  if (failed === 0) return 'succeeded';
  return failed === ran.length ? 'failed' : 'partial';
}

/**
 * Run a request across the selected connections, concurrently under `concurrency`. A connection's
 * failure never fails the others. Throws only for a bad request (unknown connection, bad identifiers).
 */
export async function runJob(config: AgentConfig, req: JobRequest, ctx: ConnectionContext, concurrency: number, opts: RunJobOptions = {}): Promise<JobResult> {
  assertIdentifiers(req.identifiers);
  const selections = selectConnections(config, req.type, req.connections);
  if (req.type === 'access' && !opts.sink) throw new Error('an access job needs a report sink');
  // p-limit only when it can bite: a job that fits under the limit skips its per-task bookkeeping.
  const limit: <T>(fn: () => Promise<T>) => Promise<T> = selections.length > concurrency ? pLimit(concurrency) : (fn) => fn();
  const connections = await Promise.all(
    selections.map((sel) =>
      limit(async (): Promise<ConnectionResult> => {
        const { connection: c } = sel;
        const base = { uuid: c.uuid, name: c.name };
        if (sel.skip) return { ...base, status: 'skipped', reason: sel.skip };
        opts.progress?.onStart?.(base);
        const started = performance.now();
        let result: ConnectionResult;
        try {
          if (sel.failWith) throw sel.failWith;
          const out = await runConnectionQueries(c, req.type, req.identifiers, ctx, opts);
          result = { ...base, status: 'succeeded', ...out };
        } catch (err) {
          if (!(err instanceof AgentError)) ctx.logger.debug({ err }, 'unexpected error');
          const e = asAgentError(err);
          ctx.logger.error({ connection: c.name, uuid: c.uuid, code: e.code, err: { message: e.message } }, `${req.type} failed`);
          // Reports written before the failure are listed: no file of personal data exists that no job points to.
          result = { ...base, status: 'failed', error: e.toJSON(), ...partialReportsOf(err) };
        }
        result.duration_ms = Math.round(performance.now() - started);
        opts.progress?.onDone?.(result);
        return result;
      }),
    ),
  );
  return { type: req.type, status: jobStatus(connections), connections };
}
