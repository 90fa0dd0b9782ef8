/**
 * Retention (agent.retention_days): finished jobs and their Local reports are deleted once they are
 * older than the retention period, at start and then every hour. Jobs in flight are never purged.
 */
import type { Logger } from '../logger.js';
import type { JobQueue } from '../queue/types.js';
import type { ReportStorage } from '../storage/sink.js';

/** How often the purge runs (also once at start). */
export const PURGE_INTERVAL_MS = 60 * 60 * 1000; // 1 h
const DAY_MS = 24 * 60 * 60 * 1000;

/** agent.retention_days in ms (0: keep forever). */
export const retentionMsOf = (days: number): number => days * DAY_MS;

/** What the purge needs. */
export interface RetentionOptions {
  queue: Pick<JobQueue, 'purge'>;
  storage: Pick<ReportStorage, 'purge'>;
  /** agent.retention_days; 0 keeps everything (no purge runs). */
  retentionDays: number;
  logger: Logger;
}

/** A running purge schedule. */
export interface Retention {
  /** Purge now (the schedule's work); resolves with what was deleted. Never rejects. */
  purgeNow(): Promise<{ jobs: number; reports: number }>;
  stop(): void;
}

/** Start purging finished jobs and reports past their retention. */
export function startRetention(opts: RetentionOptions): Retention {
  const log = opts.logger.child({ component: 'retention' });
  const retentionMs = retentionMsOf(opts.retentionDays);
  let running: Promise<{ jobs: number; reports: number }> | undefined;

  async function purge(): Promise<{ jobs: number; reports: number }> {
    const cutoff = Date.now() - retentionMs;
    const out = { jobs: 0, reports: 0 };
    try {
      out.jobs = await opts.queue.purge(cutoff);
    } catch (err) {
      log.error({ err: { message: (err as Error).message } }, 'purging finished jobs failed; the next round tries again');
    }
    try {
      out.reports = (await opts.storage.purge?.(cutoff)) ?? 0;
    } catch (err) {
      log.error({ err: { message: (err as Error).message } }, 'purging old reports failed; the next round tries again');
    }
    if (out.jobs || out.reports) log.info({ ...out, retentionDays: opts.retentionDays }, 'purged finished jobs and reports past their retention');
    return out;
  }

  const purgeNow = () =>
    (running ??= purge().finally(() => {
      running = undefined;
    }));

  if (retentionMs <= 0) return { purgeNow: async () => ({ jobs: 0, reports: 0 }), stop: () => undefined };
  void purgeNow();
  const timer = setInterval(() => void purgeNow(), PURGE_INTERVAL_MS);
  timer.unref();
  return { purgeNow, stop: () => clearInterval(timer) };
}
