/**
 * Readiness for `dsr-agent serve`: the checks run in the background every readiness interval and their
 * outcome is cached, so /readyz probes (every few seconds, from every kubelet) never reach the targets.
 */
import type { AgentConfig } from '../config/types.js';
import type { SecretsSource } from '../credentials/source.js';
import type { Engine, TestResult } from '../engine/index.js';
import { AgentError, ErrorCodes, isAgentError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { JobQueue } from '../queue/types.js';
import type { ReportStorage } from '../storage/sink.js';

/** One check's outcome. A failure carries the agent error code (the message goes to the log). */
export interface CheckOutcome {
  ok: boolean;
  code?: string;
  /** connections: the live connections whose test queries failed. */
  failing?: Array<{ name: string; uuid: string; code: string }>;
}

/** What /readyz answers. */
export interface ReadinessSnapshot {
  status: 'ok' | 'unavailable' | 'draining';
  /** When the latest background check finished; absent before the first. */
  checked_at?: string;
  /** config, credentials, storage, connections, and queue (live: the journal's disk or Redis, as of the latest write or command). */
  checks?: Record<string, CheckOutcome>;
  /** Request sources: the latest poll of each (details only: a failing source does not make the replica unready). */
  sources?: Record<string, unknown>;
}

/** The latest test-query outcome of one connection. */
export interface LastTest {
  healthy: boolean;
  checked_at: string;
  error?: { code: string; message: string };
}

/** Background readiness checks. */
export interface Readiness {
  /** Run a check now and then every interval. Idempotent. */
  start(): void;
  /** Stop the timer and abort a running check. */
  stop(): void;
  /** From now on report "draining" (the service is shutting down). */
  setDraining(): void;
  /** The cached outcome; never does I/O. */
  snapshot(): ReadinessSnapshot;
  /** Run every check now and cache the outcome (the timer's work; also for tests and a manual refresh). */
  refresh(): Promise<ReadinessSnapshot>;
  /** A connection's latest test outcome, or null before its first. */
  lastTest(uuid: string): LastTest | null;
  /** Remember a test run elsewhere (POST /api/v1/connections/:uuid/test). */
  record(result: TestResult): void;
  /** Where the request sources' states come from (shown under `sources`). */
  setSources(states: () => Record<string, unknown>): void;
}

/** What readiness needs. */
export interface ReadinessOptions {
  engine: Engine;
  storage: ReportStorage;
  secrets: SecretsSource;
  config: AgentConfig;
  logger: Logger;
  /** The job queue: its health is read at every probe, so a failed journal write or a lost Redis shows at once. */
  queue?: Pick<JobQueue, 'health'>;
  /** Time between checks in ms (agent.readiness_interval_seconds × 1000). Default 60000. */
  intervalMs?: number;
  /** How long one round of checks may take before the slow parts count as failed, in ms. Default 30000. */
  checkTimeoutMs?: number;
}

const PENDING: CheckOutcome = { ok: false, code: 'PENDING' };

function codeOf(err: unknown): string {
  return isAgentError(err) ? err.code : ErrorCodes.INTERNAL;
}

/** Make background readiness: config loaded, credentials manager answers, storage writable, live connections healthy. */
export function makeReadiness(opts: ReadinessOptions): Readiness {
  const { engine, storage, secrets, config } = opts;
  const log = opts.logger.child({ component: 'readiness' });
  const intervalMs = opts.intervalMs ?? 60_000;
  const checkTimeoutMs = opts.checkTimeoutMs ?? 30_000;
  const live = config.connections.filter((c) => c.mode === 'live');
  // The API client secret when configured, else the first connection's: either proves the manager answers.
  const probeLocation = config.datagrail_agent_credentials_location ?? config.connections[0]?.credentials_location;
  const lastTests = new Map<string, LastTest>();
  let checks: Record<string, CheckOutcome> = { config: { ok: true }, credentials: PENDING, storage: PENDING, connections: PENDING };
  let checkedAt: string | undefined;
  let sourceStates: (() => Record<string, unknown>) | undefined;
  let draining = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<ReadinessSnapshot> | undefined;
  let controller = new AbortController();
  let started = false;

  function record(r: TestResult): void {
    lastTests.set(r.uuid, { healthy: r.healthy, checked_at: new Date().toISOString(), ...(r.error ? { error: r.error } : {}) });
  }

  async function check(name: string, signal: AbortSignal, run: () => Promise<void>): Promise<CheckOutcome> {
    try {
      // A hung dependency must fail the check, not stall readiness forever.
      await Promise.race([
        run(),
        new Promise<never>((_, reject) => {
          if (signal.aborted) reject(signal.reason);
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
      ]);
      if (checks[name] && !checks[name].ok && checks[name] !== PENDING) log.info({ check: name }, 'readiness check recovered');
      return { ok: true };
    } catch (err) {
      log.warn({ check: name, code: codeOf(err), err: { message: isAgentError(err) ? err.message : 'unexpected error' } }, 'readiness check failed');
      return { ok: false, code: codeOf(err) };
    }
  }

  async function checkConnections(signal: AbortSignal): Promise<CheckOutcome> {
    if (live.length === 0) return { ok: true };
    const results = await engine.test(live.map((c) => c.uuid), signal);
    for (const r of results) record(r);
    const failing = results.filter((r) => !r.healthy).map((r) => ({ name: r.name, uuid: r.uuid, code: r.error?.code ?? ErrorCodes.INTERNAL }));
    for (const r of results.filter((x) => !x.healthy)) {
      log.warn({ connection: r.name, uuid: r.uuid, code: r.error?.code, err: { message: r.error?.message } }, 'connection test queries failed');
    }
    return failing.length ? { ok: false, code: 'CONNECTION_UNHEALTHY', failing } : { ok: true };
  }

  async function runChecks(): Promise<ReadinessSnapshot> {
    const deadline = new AbortController();
    const timeout = setTimeout(
      () => deadline.abort(new AgentError(ErrorCodes.JOB_TIMEOUT, `the readiness check did not finish within ${checkTimeoutMs / 1000} s`)),
      checkTimeoutMs,
    );
    timeout.unref();
    const signal = AbortSignal.any([controller.signal, deadline.signal]);
    try {
      const [credentials, store, connections] = await Promise.all([
        check('credentials', signal, async () => {
          if (probeLocation) await secrets.get(probeLocation);
        }),
        check('storage', signal, () => storage.check()),
        checkConnections(signal).catch((err): CheckOutcome => ({ ok: false, code: codeOf(err) })),
      ]);
      checks = { config: { ok: true }, credentials, storage: store, connections };
      checkedAt = new Date().toISOString();
      return snapshot();
    } finally {
      clearTimeout(timeout);
    }
  }

  function refresh(): Promise<ReadinessSnapshot> {
    running ??= runChecks().finally(() => {
      running = undefined;
    });
    return running;
  }

  function schedule(): void {
    timer = setTimeout(() => {
      void refresh().finally(() => {
        if (started) schedule();
      });
    }, intervalMs);
    timer.unref();
  }

  function snapshot(): ReadinessSnapshot {
    if (draining) return { status: 'draining' };
    let all = checks;
    if (opts.queue) {
      const h = opts.queue.health();
      all = { ...checks, queue: h.ok ? { ok: true } : { ok: false, code: h.code ?? ErrorCodes.QUEUE_UNAVAILABLE } };
    }
    const ok = Object.values(all).every((c) => c.ok);
    const sources = sourceStates?.();
    return { status: ok ? 'ok' : 'unavailable', ...(checkedAt ? { checked_at: checkedAt } : {}), checks: all, ...(sources && Object.keys(sources).length ? { sources } : {}) };
  }

  return {
    start() {
      if (started) return;
      started = true;
      controller = new AbortController();
      void refresh().finally(() => {
        if (started) schedule();
      });
    },
    stop() {
      started = false;
      if (timer) clearTimeout(timer);
      controller.abort();
    },
    setDraining() {
      draining = true;
    },
    snapshot,
    refresh,
    lastTest: (uuid) => lastTests.get(uuid) ?? null,
    record,
    setSources(states) {
      sourceStates = states;
    },
  };
}
