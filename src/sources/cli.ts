/**
 * `dsr-agent sources check` and `dsr-agent sources poll --once [--dry-run]`: a request source from
 * the command line, for setting one up. Neither prints personal data: identifiers appear by name only.
 */
import { resolve } from 'node:path';
import type { Agent } from '../bootstrap.js';
import type { RequestSourceConfig } from '../config/types.js';
import { AgentError, ErrorCodes, asAgentError } from '../errors.js';
import type { AgentEnv } from '../env.js';
import type { Logger } from '../logger.js';
import { makeJobQueue } from '../queue/index.js';
import { makeReportStorage } from '../storage/index.js';
import { lockDataDir } from '../server/data-lock.js';
import { retryPolicyOf } from '../engine/send.js';
import { adapterOf } from './index.js';
import { makeFileLedger, openLedger, sourceJobId } from './ledger.js';
import { makePoller, type PollReport } from './poller.js';
import type { RequestSource } from './types.js';

/** The sources a command works on: all, or the one named. */
function selected(agent: Agent, name?: string): RequestSourceConfig[] {
  const all = agent.loaded.config.request_sources ?? [];
  if (all.length === 0) throw new AgentError(ErrorCodes.BAD_REQUEST, 'the config has no request_sources');
  if (name === undefined) return [...all];
  const one = all.find((s) => s.name === name);
  if (!one) throw new AgentError(ErrorCodes.BAD_REQUEST, `no request source named '${name}'; configured: ${all.map((s) => s.name).join(', ')}`);
  return [one];
}

async function sourceOf(agent: Agent, cfg: RequestSourceConfig, logger: Logger): Promise<RequestSource> {
  const secret = await agent.secrets.get(cfg.credentials_location);
  return adapterOf(cfg.type)!.make(cfg, { secret, logger, retry: retryPolicyOf(agent.loaded.config.agent) });
}

/** One line per source: reachable, and how many eligible requests per job type. Resolves false when a source failed. */
export async function checkSources(agent: Agent, logger: Logger, name?: string): Promise<{ ok: boolean; sources: unknown[] }> {
  const rows: unknown[] = [];
  let ok = true;
  for (const cfg of selected(agent, name)) {
    try {
      const source = await sourceOf(agent, cfg, logger);
      const counts = { requests: 0, access: 0, delete: 0, optout: 0, identifiers: 0, needs_attention: 0 };
      for await (const req of source.list(AbortSignal.timeout(5 * 60 * 1000))) {
        counts.requests++;
        if (req.attention !== undefined) counts.needs_attention++;
        for (const job of req.jobs) counts[job.type]++;
      }
      rows.push({ source: cfg.name, type: cfg.type, ok: true, ...counts });
    } catch (err) {
      ok = false;
      const e = asAgentError(err);
      rows.push({ source: cfg.name, type: cfg.type, ok: false, error: { code: e.code, message: e.message } });
    }
  }
  return { ok, sources: rows };
}

/** What a dry run shows of one request: job ids and identifier names, never values. */
interface PlannedRequest {
  request: string;
  already_written_back: boolean;
  jobs?: Array<{ job_id: string; type: string; identifiers: string[] }>;
  needs_attention?: string;
}

/**
 * One polling round in the foreground. With `dryRun`: what it would start and write back, sending
 * nothing. Otherwise: the round on the configured queue (the embedded journal in the data
 * directory, or Redis), the jobs run in this process, then rounds until every taken request is
 * written back or `waitMs` passes.
 */
export async function pollSources(
  agent: Agent,
  logger: Logger,
  opts: { env: AgentEnv; name?: string; dryRun?: boolean; waitMs?: number },
): Promise<{ ok: boolean; sources: unknown[] }> {
  const config = agent.loaded.config;
  const dataDir = resolve(opts.env.dataDir ?? 'data');
  const rows: unknown[] = [];
  let ok = true;
  if (opts.dryRun) {
    const ledger = config.redis_url ? undefined : makeFileLedger(dataDir);
    for (const cfg of selected(agent, opts.name)) {
      try {
        const source = await sourceOf(agent, cfg, logger);
        const requests: PlannedRequest[] = [];
        for await (const req of source.list(AbortSignal.timeout(5 * 60 * 1000))) {
          const done = (await ledger?.isDone(cfg.name, req.id)) ?? false;
          requests.push(
            req.attention !== undefined
              ? { request: req.id, already_written_back: done, needs_attention: req.attention }
              : { request: req.id, already_written_back: done, jobs: req.jobs.map((j) => ({ job_id: sourceJobId(cfg.name, req.id, j.type), type: j.type, identifiers: Object.keys(j.identifiers) })) },
          );
        }
        rows.push({ source: cfg.name, dry_run: true, requests });
      } catch (err) {
        ok = false;
        rows.push({ source: cfg.name, error: asAgentError(err).toJSON() });
      }
    }
    return { ok, sources: rows };
  }

  // The embedded journal and ledger have one owner: refuse to run beside a serve on the same directory.
  const unlock = config.redis_url ? () => undefined : lockDataDir(dataDir);
  const storage = makeReportStorage(config.platform.storage_manager, { dataDir, baseDir: agent.loaded.baseDir, env: opts.env });
  const queue = makeJobQueue({ redisUrl: config.redis_url, dataDir, logger, name: config.agent.queue_name, lockMs: config.agent.job_lock_seconds * 1000 });
  await queue.start((job, signal) => agent.engine.run(job.submission, { sink: storage.forJob(job.id), signal }), config.agent.job_concurrency);
  const { ledger, close: closeLedger } = await openLedger(config, dataDir);
  try {
    for (const cfg of selected(agent, opts.name)) {
      try {
        const poller = makePoller({ source: await sourceOf(agent, cfg, logger), queue, ledger, storage: storage.description, logger });
        const deadline = Date.now() + (opts.waitMs ?? 10 * 60 * 1000);
        const total: PollReport = { listed: 0, taken: 0, skipped: 0, written_back: 0, waiting: 0, failed: 0 };
        for (let round = 0; ; round++) {
          const r = await poller.pollOnce(AbortSignal.timeout(5 * 60 * 1000));
          if (round === 0) total.listed = r.listed;
          total.taken += r.taken;
          total.written_back += r.written_back;
          total.failed += r.failed;
          total.skipped = r.skipped;
          total.waiting = r.waiting;
          if (r.waiting === 0 || Date.now() > deadline) break;
          await new Promise((res) => setTimeout(res, 1000));
        }
        rows.push({ source: cfg.name, ok: total.failed === 0 && total.waiting === 0, ...total });
        if (total.failed > 0 || total.waiting > 0) ok = false;
      } catch (err) {
        ok = false;
        rows.push({ source: cfg.name, ok: false, error: asAgentError(err).toJSON() });
      }
    }
  } finally {
    await queue.close(config.agent.shutdown_grace_seconds * 1000);
    closeLedger();
    unlock();
  }
  return { ok, sources: rows };
}
