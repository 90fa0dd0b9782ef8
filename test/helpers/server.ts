/**
 * A real `serve` HTTP layer for tests: a validated config, JSONFile secrets in a temp dir, a real engine,
 * Local report storage, the real embedded job queue, real metrics and readiness, and the app listening on
 * 127.0.0.1:0. The job processor mirrors the one src/server/main.ts wires.
 */
import type { ThrottleOptions } from '../../src/server/throttle.js';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/server/app.js';
import { deriveTokenKey, tokenBindingOf } from '../../src/server/auth.js';
import { makeMetrics, type Metrics } from '../../src/server/metrics.js';
import { makeReadiness, type Readiness } from '../../src/server/readiness.js';
import { makeSecretsSource } from '../../src/credentials/index.js';
import { makeLocalStorage } from '../../src/storage/local.js';
import { makeJobQueue, type JobQueue } from '../../src/queue/index.js';
import { makeTestAgent, type TestAgent } from './agent.js';

/** The API client the tests authenticate as. */
export const CLIENT = { id: 'datagrail', secret: 'c0rrect horse+battery:staple/%' } as const;
/** Where the API client secret lives in the JSONFile. */
export const API_LOCATION = 'dsr-agent-api';
/** The connections' secret. */
export const CONNECTION_SECRET = { credentials: 'dXNlcjpwYXNz' } as const;

/** A running test server. */
export interface TestServer {
  app: FastifyInstance;
  /** http://127.0.0.1:port */
  url: string;
  agent: TestAgent;
  queue: JobQueue;
  metrics: Metrics;
  readiness: Readiness;
  tokenKey: Uint8Array;
  /** Where Local storage writes reports. */
  reportsDir: string;
  close(): Promise<void>;
}

/** Options of {@link startTestServer}. */
export interface TestServerOptions {
  /** Extra top-level config. */
  top?: Record<string, unknown>;
  /** Set datagrail_agent_credentials_location (default true). */
  apiCredentials?: boolean;
  /** Extra JSONFile entries. */
  secrets?: Record<string, Record<string, unknown>>;
  level?: string;
  /** Start the processor (default true). */
  process?: boolean;
  /** Token endpoint throttle settings over the defaults. */
  throttle?: Partial<ThrottleOptions>;
}

/** Start the app around raw connections (see makeTestAgent's `connection()`). */
export async function startTestServer(connections: Array<Record<string, unknown>>, opts: TestServerOptions = {}): Promise<TestServer> {
  const metrics = makeMetrics();
  const agent = makeTestAgent(connections, {
    top: { ...(opts.apiCredentials === false ? {} : { datagrail_agent_credentials_location: API_LOCATION }), ...opts.top },
    secrets: { default: { ...CONNECTION_SECRET }, [API_LOCATION]: { client_id: CLIENT.id, client_secret: CLIENT.secret }, ...opts.secrets },
    level: opts.level,
    deps: { hooks: metrics.engineHooks },
  });
  const { config } = agent;
  // The raw source reads the file on every get, so a test can rotate the API secret.
  const secrets = makeSecretsSource(config.platform.credentials_manager, agent.dir);
  const reportsDir = join(agent.dir, 'reports');
  const storage = makeLocalStorage({ directory: reportsDir });
  const queue = makeJobQueue({ dataDir: join(agent.dir, 'data'), logger: agent.logs.logger });
  const readiness = makeReadiness({ engine: agent.engine, storage, secrets, config, logger: agent.logs.logger, queue, intervalMs: 60_000 });
  // The key the app derives from the API client secret and this config's deployment (tests sign their own tokens with it).
  const tokenKey = deriveTokenKey({ clientId: CLIENT.id, clientSecret: CLIENT.secret }, tokenBindingOf(config));
  if (opts.process !== false) {
    await queue.start(async (job, signal) => {
      const result = await agent.engine.run(job.submission, { sink: storage.forJob(job.id), signal });
      metrics.jobFinished(result.type, result.status);
      return result;
    }, 2);
  }
  const app = await buildApp({ config, engine: agent.engine, queue, storage, secrets, logger: agent.logs.logger, metrics, readiness, version: '9.9.9-test', throttle: opts.throttle });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    app,
    url,
    agent,
    queue,
    metrics,
    readiness,
    tokenKey,
    reportsDir,
    close: async () => {
      readiness.stop();
      await app.close();
      await queue.close(1000);
      await agent.close();
    },
  };
}

/** Get an access token with a plain form POST (HTTP Basic). */
export async function getToken(url: string): Promise<string> {
  const res = await fetch(`${url}/api/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(CLIENT.id, CLIENT.secret) },
    body: 'grant_type=client_credentials',
  });
  if (res.status !== 200) throw new Error(`token request answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

/** An RFC 6749 §2.3.1 Basic header (each half form-urlencoded). */
export function basic(id: string, secret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}
