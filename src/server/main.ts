/**
 * `dsr-agent serve`: load the config once, build every dependency, listen, and shut down
 * gracefully: the first SIGTERM/SIGINT turns /readyz to 503, stops starting jobs, lets running
 * ones finish within agent.shutdown_grace_seconds (then hands them back to the queue) and exits 0;
 * a second signal exits at once.
 */
import { resolve } from 'node:path';
import { makeAgent } from '../bootstrap.js';
import type { ConfigSources } from '../config/load.js';
import type { AgentEnv } from '../env.js';
import { AgentError, ErrorCodes } from '../errors.js';
import { makeLogger } from '../logger.js';
import { makeJobQueue } from '../queue/index.js';
import { retentionMsOf, startRetention } from './retention.js';
import { makeReportStorage } from '../storage/index.js';
import { VERSION } from '../version.js';
import { buildApp } from './app.js';
import { makeCallbackSender } from './callback.js';
import { makeMetrics } from './metrics.js';
import { makeReadiness } from './readiness.js';
import { makeSources } from '../sources/service.js';
import { lockDataDir } from './data-lock.js';
import { retryPolicyOf } from '../engine/send.js';

/** Options for {@link serve}. */
export interface ServeOptions extends ConfigSources {
  readonly port: number;
  /** Default 0.0.0.0 (a container listens on all interfaces). */
  readonly host?: string;
  /** Settings read from the environment (LOGLEVEL, DSR_AGENT_DATA_DIR, ...). */
  readonly agentEnv: AgentEnv;
}

/** A running service. */
export interface Service {
  readonly url: string;
  /** Graceful stop (what the first signal does). */
  stop(): Promise<void>;
}

/** Start the service; resolves once listening. Config or credentials problems throw AgentError. */
export async function startService(opts: ServeOptions): Promise<Service> {
  const logger = makeLogger({ level: opts.agentEnv.logLevel, destination: 1 });
  const metrics = makeMetrics();
  const { loaded, secrets, engine } = await makeAgent(opts, logger, metrics.engineHooks, opts.agentEnv);
  const { config, baseDir, source } = loaded;
  const dataDir = resolve(opts.cwd, opts.agentEnv.dataDir ?? 'data');
  if (!config.datagrail_agent_credentials_location) {
    throw new AgentError(ErrorCodes.CONFIG_INVALID, 'serve needs datagrail_agent_credentials_location: the secret {"client_id", "client_secret"} that API clients authenticate with');
  }
  const client = await secrets.get(config.datagrail_agent_credentials_location);
  if (!client.client_id || !client.client_secret) {
    throw new AgentError(ErrorCodes.SECRET_INVALID, `the secret at ${config.datagrail_agent_credentials_location} must hold "client_id" and "client_secret"`);
  }
  // One owner per data directory, taken before the journal is read: a second instance exits, no job runs twice.
  const unlock = lockDataDir(dataDir);
  const storage = makeReportStorage(config.platform.storage_manager, { dataDir, baseDir, env: opts.agentEnv });
  // The callback sender warns at startup when callback_url has no datagrail_credentials_location (sent without Authorization).
  const callback = config.callback_url
    ? makeCallbackSender({ url: config.callback_url, secrets, ...(config.datagrail_credentials_location ? { location: config.datagrail_credentials_location } : {}), logger })
    : undefined;
  const queue = makeJobQueue({
    redisUrl: config.redis_url,
    dataDir,
    logger,
    name: config.agent.queue_name,
    lockMs: config.agent.job_lock_seconds * 1000,
    retentionMs: retentionMsOf(config.agent.retention_days),
    // Durable: the queue journals a pending callback with the job's final state and resumes it after a restart.
    ...(callback ? { notify: (view, signal) => callback.send(view, signal) } : {}),
  });
  const readiness = makeReadiness({ engine, storage, secrets, config, logger, queue, intervalMs: config.agent.readiness_interval_seconds * 1000 });

  const sources = makeSources({
    config,
    secrets,
    queue,
    storage: storage.description,
    dataDir,
    logger,
    retry: retryPolicyOf(config.agent),
    hooks: metrics.sourceHooks,
  });
  readiness.setSources(() => sources.state());
  readiness.start();

  // Access tokens: buildApp derives the signing key from the API client secret and this deployment, re-reading the secret through the cache (rotation).
  const app = await buildApp({ config, engine, queue, storage, secrets, logger, metrics, readiness, version: VERSION });
  let address: string;
  try {
    address = await app.listen({ port: opts.port, host: opts.host ?? '0.0.0.0' });
  } catch (err) {
    readiness.stop();
    unlock();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      throw new AgentError(ErrorCodes.CONFIG_INVALID, `cannot listen on port ${opts.port} (${code}): another process uses it, or it needs privileges; set PORT or --port`, { cause: err });
    }
    throw err;
  }
  // Jobs resume only once the port is ours: an instance that cannot listen never runs a journaled job.
  await queue.start(async (job, signal) => {
    const log = logger.child({ jobId: job.id, type: job.submission.type, attempt: job.attempt });
    log.info('job started');
    const result = await engine.run(job.submission, { sink: storage.forJob(job.id), signal });
    if (signal.aborted) throw signal.reason; // shutdown: hand the job back rather than record a failure
    metrics.jobFinished(result.type, result.status);
    log.info({ status: result.status }, 'job finished');
    return result; // the queue journals the final state, then sends the callback
  }, config.agent.job_concurrency);
  const retention = startRetention({ queue, storage, retentionDays: config.agent.retention_days, logger });
  logger.info({ address, config: source, queue: config.redis_url ? 'redis' : 'embedded', storage: storage.description }, 'dsr-agent serving');
  // Polling starts once the API listens: a request taken is a job the API can already answer for.
  sources.start();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info({ graceSeconds: config.agent.shutdown_grace_seconds }, 'shutting down: draining jobs');
      readiness.setDraining();
      await sources.stop();
      retention.stop();
      await queue.close(config.agent.shutdown_grace_seconds * 1000); // drains callbacks within the grace too
      callback?.close();
      readiness.stop();
      await app.close();
      await engine.close();
      unlock();
      logger.info('stopped');
    })());
  return { url: address, stop };
}

/** Run the service until a signal; the first signal stops gracefully, the second exits at once. */
export async function serve(opts: ServeOptions): Promise<void> {
  const service = await startService(opts);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) {
      process.stderr.write(`second ${sig}: exiting now\n`);
      process.exit(1);
    }
    service.stop().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`shutdown failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
