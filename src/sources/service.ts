/**
 * The request sources of a running service: one poll loop per source, every
 * `options.poll_interval_seconds`. A source that fails (refused credentials, down, slow) logs a
 * clear error, shows in /readyz details and metrics, and is polled again on the next interval; it
 * never blocks the job API, the other sources or running jobs.
 */
import type { AgentConfig, RequestSourceConfig } from '../config/types.js';
import type { SecretsSource } from '../credentials/source.js';
import { asAgentError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { JobQueue } from '../queue/index.js';
import type { RetryPolicy } from '../engine/send.js';
import { adapterOf, pollIntervalOf } from './index.js';
import { openLedger, type SourceLedger } from './ledger.js';
import { makePoller, type PollReport } from './poller.js';
import { makeTokenCache, type TokenCache } from '../engine/tokens.js';

/** The latest state of one source, for /readyz details (no personal data). */
export interface SourceState {
  ok: boolean;
  /** When the latest poll finished without error. */
  last_success?: string;
  /** The error code of the latest failed poll. */
  code?: string;
  status?: number;
}

/** Metrics the loops report to. */
export interface SourceHooks {
  polled?(source: string, outcome: 'ok' | 'error'): void;
  requests?(source: string, report: PollReport): void;
}

/** What the sources need from the service. */
export interface SourcesOptions {
  readonly config: AgentConfig;
  readonly secrets: SecretsSource;
  readonly queue: Pick<JobQueue, 'submit' | 'get'>;
  readonly storage: string;
  readonly dataDir: string;
  readonly logger: Logger;
  readonly retry: RetryPolicy;
  readonly hooks?: SourceHooks;
}

/** The running sources. */
export interface Sources {
  start(): void;
  stop(): Promise<void>;
  state(): Record<string, SourceState>;
  /** One round of one source now (the loop's work; for tests and the CLI). */
  pollOnce(name: string, signal?: AbortSignal): Promise<PollReport>;
}

/** Build the sources of a config (none when it has no request_sources). */
export function makeSources(opts: SourcesOptions): Sources {
  const configs = opts.config.request_sources ?? [];
  const states = new Map<string, SourceState>(configs.map((c) => [c.name, { ok: true }]));
  const controller = new AbortController();
  const timers = new Set<NodeJS.Timeout>();
  const running = new Set<Promise<unknown>>();
  let opened: Promise<{ ledger: SourceLedger; close(): void }> | undefined;
  const tokenCaches = new Map<string, TokenCache>();
  const tokenCacheOf = (name: string): TokenCache => {
    let c = tokenCaches.get(name);
    if (!c) tokenCaches.set(name, (c = makeTokenCache()));
    return c;
  };
  const ledgerOf = async (): Promise<SourceLedger> => (await (opened ??= openLedger(opts.config, opts.dataDir))).ledger;

  async function round(cfg: RequestSourceConfig, signal: AbortSignal): Promise<PollReport> {
    const log = opts.logger.child({ source: cfg.name });
    try {
      const secret = await opts.secrets.get(cfg.credentials_location);
      const source = adapterOf(cfg.type)!.make(cfg, { secret, retry: opts.retry, logger: log, tokenCache: tokenCacheOf(cfg.name) });
      const report = await makePoller({ source, queue: opts.queue, ledger: await ledgerOf(), storage: opts.storage, logger: opts.logger }).pollOnce(signal);
      states.set(cfg.name, { ok: true, last_success: new Date().toISOString() });
      opts.hooks?.polled?.(cfg.name, 'ok');
      opts.hooks?.requests?.(cfg.name, report);
      return report;
    } catch (err) {
      const e = asAgentError(err);
      const prev = states.get(cfg.name);
      states.set(cfg.name, { ok: false, code: e.code, ...(e.status !== undefined && { status: e.status }), ...(prev?.last_success && { last_success: prev.last_success }) });
      opts.hooks?.polled?.(cfg.name, 'error');
      const refused = e.status === 401 || e.status === 403;
      log.error(
        { code: e.code, status: e.status, err: { message: e.message } },
        refused ? 'the platform refused the source\'s credentials; polling resumes on the next interval' : 'polling the source failed; it is retried on the next interval',
      );
      throw e;
    }
  }

  const loop = (cfg: RequestSourceConfig) => {
    const next = () => {
      const t = setTimeout(() => {
        timers.delete(t);
        const p = round(cfg, controller.signal).catch(() => undefined).finally(() => {
          running.delete(p);
          if (!controller.signal.aborted) next();
        });
        running.add(p);
      }, pollIntervalOf(cfg) * 1000);
      t.unref();
      timers.add(t);
    };
    const first = round(cfg, controller.signal).catch(() => undefined).finally(() => {
      running.delete(first);
      if (!controller.signal.aborted) next();
    });
    running.add(first);
  };

  return {
    start() {
      for (const cfg of configs) loop(cfg);
    },
    async stop() {
      controller.abort();
      for (const t of timers) clearTimeout(t);
      await Promise.allSettled([...running]);
      if (opened) (await opened).close();
    },
    state: () => Object.fromEntries(states),
    pollOnce(name, signal = controller.signal) {
      const cfg = configs.find((c) => c.name === name);
      if (!cfg) throw new Error(`no request source named ${name}`);
      return round(cfg, signal);
    },
  };
}
