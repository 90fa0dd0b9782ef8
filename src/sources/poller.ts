/**
 * One polling round of a request source: every eligible request becomes its jobs (at most once:
 * the job ids derive from the request, and the queue accepts an id once), and once all of a
 * request's jobs are final its outcome is written back (at most once: a claim, then a durable
 * marker in the ledger). A request that needs attention is reported back once and never run.
 * Not wired into `serve` yet (issue 9): the service's poll loop, config and CLI come next.
 */
import { ErrorCodes, asAgentError, isAgentError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { JobQueue, JobView } from '../queue/index.js';
import { sourceJobId, type SourceLedger } from './ledger.js';
import type { JobOutcome, RequestSource } from './types.js';

/** What one round did, for logs and metrics (no personal data). */
export interface PollReport {
  /** Eligible requests listed. */
  listed: number;
  /** Jobs this round created (a job that already existed is not counted). */
  taken: number;
  /** Requests already written back, left alone. */
  skipped: number;
  /** Outcomes (or attention notes) the platform accepted this round. */
  written_back: number;
  /** Requests whose jobs are not all final yet. */
  waiting: number;
  /** Write-backs that failed (retried on a later round). */
  failed: number;
}

/** What a poller is built from. */
export interface PollerOptions {
  readonly source: RequestSource;
  readonly queue: Pick<JobQueue, 'submit' | 'get'>;
  readonly ledger: SourceLedger;
  /** Where reports are stored, as the storage describes itself (goes into the summary). */
  readonly storage: string;
  readonly logger: Logger;
  /** How long one replica holds a request's write-back. Default 60 s. */
  readonly leaseMs?: number;
}

const FINAL = new Set(['succeeded', 'partial', 'failed']);

function outcomeOf(view: JobView, storage: string): JobOutcome {
  return {
    jobId: view.id,
    type: view.type,
    status: view.status as JobOutcome['status'],
    connections: view.connections.map((c) => ({ name: c.name, status: c.status, reports: c.report_count ?? c.reports?.length ?? 0 })),
    storage,
  };
}

/** A poller for one source. */
export function makePoller(opts: PollerOptions): { pollOnce(signal: AbortSignal): Promise<PollReport> } {
  const { source, queue, ledger } = opts;
  const leaseMs = opts.leaseMs ?? 60 * 1000;
  const log = opts.logger.child({ source: source.name });

  return {
    async pollOnce(signal) {
      const report: PollReport = { listed: 0, taken: 0, skipped: 0, written_back: 0, waiting: 0, failed: 0 };
      const writeBack = async (requestId: string, outcome: Parameters<RequestSource['writeBack']>[1]) => {
        if (!(await ledger.claim(source.name, requestId, leaseMs))) return;
        try {
          await source.writeBack(requestId, outcome, signal);
          await ledger.markDone(source.name, requestId);
          report.written_back++;
        } catch (err) {
          report.failed++;
          const e = asAgentError(err);
          log.warn({ code: e.code, status: e.status, err: { message: e.message } }, 'write-back failed; retried on the next round');
          await ledger.release(source.name, requestId);
        }
      };
      for await (const req of source.list(signal)) {
        report.listed++;
        if (await ledger.isDone(source.name, req.id)) {
          report.skipped++;
          continue;
        }
        if (req.attention !== undefined) {
          await writeBack(req.id, { attention: req.attention });
          continue;
        }
        const ids = req.jobs.map((j) => sourceJobId(source.name, req.id, j.type));
        try {
          for (let i = 0; i < ids.length; i++) {
            const { created } = await queue.submit({ id: ids[i]!, type: req.jobs[i]!.type, identifiers: req.jobs[i]!.identifiers });
            if (created) report.taken++;
          }
        } catch (err) {
          // The request changed on the platform (other identifiers) while its job runs: leave it to this job.
          if (!isAgentError(err, ErrorCodes.JOB_CONFLICT)) throw err;
          log.warn({ code: err.code }, 'a request changed while its job was running; the running job is kept');
          report.waiting++;
          continue;
        }
        const views = await Promise.all(ids.map((id) => queue.get(id)));
        if (views.every((v) => v !== undefined && FINAL.has(v.status))) {
          await writeBack(req.id, { jobs: views.map((v) => outcomeOf(v!, opts.storage)) });
        } else report.waiting++;
      }
      log.info({ ...report }, 'poll finished');
      return report;
    },
  };
}
