import { Agent, getGlobalDispatcher, type Dispatcher } from 'undici';
import pLimit from 'p-limit';
import type { AgentConfig, Connection } from '../config/types.js';
import type { SecretsCache } from '../credentials/source.js';
import { asAgentError } from '../errors.js';
import type { Logger } from '../logger.js';
import { makeApiProxyConnector } from '../connectors/apiproxy.js';
import { makeConnectorRegistry, type ConnectorFactory } from '../connectors/index.js';
import type { ConnectorType } from '../config/types.js';
import { statementsOf } from '../connectors/types.js';
import { runConnectionQueries, type ConnectionContext, type EngineHooks } from './connection.js';
import { runJob, assertIdentifiers, type JobRequest, type JobResult, type RunJobOptions } from './job.js';
import type { HttpRequest, RequestStep } from './render.js';
import { retryPolicyOf } from './send.js';
import { makeTokenCache } from './tokens.js';
import { findConnection, selectConnections } from './select.js';

export type { JobRequest, JobResult, ConnectionResult, JobProgress } from './job.js';
export type { EngineHooks } from './connection.js';
export { REPORT_LIST_CAP, type ReportSummary } from './report-list.js';
export { jobStatus, assertIdentifiers } from './job.js';
export { findConnection } from './select.js';

/** What the engine is built from; every dependency is passed in. */
export interface EngineDeps {
  readonly config: AgentConfig;
  readonly secrets: SecretsCache;
  readonly logger: Logger;
  /** Dispatcher for verify_ssl "true" queries. Default: undici's global dispatcher. */
  readonly dispatcher?: Dispatcher;
  /** Dispatcher for verify_ssl "false" queries. Default: an Agent that skips certificate checks, made on first use. */
  readonly insecureDispatcher?: Dispatcher;
  readonly hooks?: EngineHooks;
  /** Steps applied to every rendered request (auth exchanges). Default none. */
  readonly steps?: readonly RequestStep[];
  /** Connector modules by type (tests may pass their own). Default: src/connectors/index.ts DEFAULT_FACTORIES. */
  readonly connectors?: Readonly<Partial<Record<ConnectorType, ConnectorFactory>>>;
}

/** The result of a connection's test queries. */
export interface TestResult {
  uuid: string;
  name: string;
  mode: Connection['mode'];
  healthy: boolean;
  duration_ms: number;
  error?: { code: string; message: string };
}

/** One request or statement --dry-run would send, secret and identifier values masked as the type needs. */
export interface PlannedRequest {
  connection: string;
  uuid: string;
  query: string;
  /** APIProxy: the HTTP request. */
  request?: HttpRequest;
  /** Databases and SSH: the statement as the driver or server receives it. */
  statement?: string;
  /** Databases: the bound parameters by name, values masked. */
  parameters?: Readonly<Record<string, string>>;
  error?: { code: string; message: string };
}

/** The APIProxy engine: runs jobs and test queries against the configured connections. */
export interface Engine {
  run(req: JobRequest, opts?: RunJobOptions): Promise<JobResult>;
  test(connections?: readonly string[], signal?: AbortSignal): Promise<TestResult[]>;
  plan(req: JobRequest): Promise<PlannedRequest[]>;
  close(): Promise<void>;
}

/** Build an engine from a loaded config and its dependencies. */
export function makeEngine(deps: EngineDeps): Engine {
  const { config } = deps;
  const opts = config.agent;
  let insecure: Dispatcher | undefined = deps.insecureDispatcher;
  let ownsInsecure = false;
  const retry = retryPolicyOf(opts);
  const maxObjectBytes = opts?.max_object_bytes ?? 64 * 1024 * 1024;
  const hooks = deps.hooks ?? {};
  const apiProxy = makeApiProxyConnector({
    secrets: deps.secrets,
    dispatchers: {
      verified: deps.dispatcher ?? getGlobalDispatcher(),
      insecure: () => {
        if (!insecure) {
          insecure = new Agent({ connect: { rejectUnauthorized: false } });
          ownsInsecure = true;
        }
        return insecure;
      },
    },
    retry,
    maxObjectBytes,
    steps: deps.steps ?? [],
    hooks,
    tokens: makeTokenCache(),
  });
  const connectors = makeConnectorRegistry(apiProxy, deps.connectors);
  const ctx: ConnectionContext = {
    secrets: deps.secrets,
    logger: deps.logger,
    retry,
    jobTimeoutMs: config.job_timeout_seconds * 1000,
    maxObjectBytes,
    hooks,
    connectors,
  };
  const concurrency = opts?.connection_concurrency ?? 8;

  return {
    run: (req, runOpts) => runJob(config, req, ctx, concurrency, runOpts),

    async test(names, signal) {
      const targets = names && names.length ? names.map((n) => findConnection(config, n)) : config.connections;
      const unique = [...new Map(targets.map((c) => [c.uuid, c])).values()];
      const limit = pLimit(concurrency);
      return Promise.all(
        unique.map((c) =>
          limit(async (): Promise<TestResult> => {
            const started = performance.now();
            try {
              // Health checks carry no identifiers: their templates may use secret keys only.
              await runConnectionQueries(c, 'test', {}, ctx, { signal });
              return { uuid: c.uuid, name: c.name, mode: c.mode, healthy: true, duration_ms: Math.round(performance.now() - started) };
            } catch (err) {
              const e = asAgentError(err);
              return { uuid: c.uuid, name: c.name, mode: c.mode, healthy: false, duration_ms: Math.round(performance.now() - started), error: e.toJSON() };
            }
          }),
        ),
      );
    },

    async plan(req) {
      assertIdentifiers(req.identifiers);
      const out: PlannedRequest[] = [];
      for (const sel of selectConnections(config, req.type, req.connections)) {
        const c = sel.connection;
        const base = { connection: c.name, uuid: c.uuid };
        if (sel.skip || sel.failWith) {
          out.push({ ...base, query: '-', error: { code: sel.failWith?.code ?? 'SKIPPED', message: sel.failWith?.message ?? sel.skip! } });
          continue;
        }
        try {
          const connector = await connectors.get(c.connector_type);
          const secret = await deps.secrets.get(c.credentials_location);
          const statements = statementsOf(c, req.type);
          for (const p of connector.plan({ conn: c, type: req.type, identifiers: req.identifiers, secret, statements })) out.push({ ...base, ...p });
        } catch (err) {
          out.push({ ...base, query: '-', error: asAgentError(err).toJSON() });
        }
      }
      return out;
    },

    async close() {
      await connectors.close();
      if (ownsInsecure && insecure) await insecure.close();
    },
  };
}
