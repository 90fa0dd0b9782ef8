/**
 * The HTTP layer of `dsr-agent serve`: a fastify app with the job API, the token endpoint, health,
 * readiness, metrics and the generated OpenAPI docs. It does not listen; src/server/main.ts does.
 */
import { makeThrottle, type ThrottleOptions } from './throttle.js';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { AgentConfig } from '../config/types.js';
import type { SecretsSource } from '../credentials/source.js';
import type { Engine } from '../engine/index.js';
import type { Logger } from '../logger.js';
import type { JobQueue } from '../queue/types.js';
import type { ReportStorage } from '../storage/sink.js';
import { DEFAULT_TOKEN_TTL_SECONDS, makeBearerHook, makeTokenKeys, tokenBindingOf, type TokenKeys } from './auth.js';
import { apiErrorHandler } from './errors.js';
import type { Metrics } from './metrics.js';
import type { Readiness } from './readiness.js';
import { connectionRoutes } from './routes/connections.js';
import { healthRoutes } from './routes/health.js';
import { jobRoutes } from './routes/jobs.js';
import { tokenRoutes } from './routes/token.js';
import { makeValidatorCompiler, readApiSchemas } from './schemas.js';

/** Everything the app is built from; the lead's main.ts makes the real ones, tests make local ones. */
export interface AppDeps {
  /** The loaded, frozen config. */
  config: AgentConfig;
  /** Runs test queries (POST /api/v1/connections/:uuid/test). */
  engine: Engine;
  queue: JobQueue;
  /** Report storage (readiness checks it through `readiness`). */
  storage: ReportStorage;
  /** Reads the API client secret {client_id, client_secret} at datagrail_agent_credentials_location; a cache's invalidate() lets the token endpoint see a rotation early. */
  secrets: SecretsSource;
  logger: Logger;
  /** From makeMetrics(); buildApp wires the queue depth into it. */
  metrics: Metrics;
  /**
   * The API client secret and the access-token signing key derived from it. Default: makeTokenKeys over
   * `secrets` at datagrail_agent_credentials_location, bound to this config's deployment.
   */
  tokenKeys?: TokenKeys;
  /** From makeReadiness(); the caller starts and stops it. */
  readiness: Readiness;
  version: string;
  /** Access token lifetime in seconds. Default 900 (15 min). */
  tokenTtlSeconds?: number;
  /** Token endpoint failure throttle settings over the defaults (tests shorten them). */
  throttle?: Partial<ThrottleOptions>;
}

/** Largest request body accepted, in bytes: 64 KiB. */
export const BODY_LIMIT_BYTES = 64 * 1024;

/** What a request looks like in the log: no headers (Authorization stays out), no query string. */
function serializeRequest(req: FastifyRequest): Record<string, unknown> {
  return { method: req.method, url: (req.url ?? '').split('?')[0], remoteAddress: req.ip };
}

/**
 * Build the fastify app (not listening). Routes: GET / (version), /healthz, /readyz, /metrics, /docs,
 * /openapi.json; POST /api/v1/token; and, behind a bearer token, POST /api/v1/jobs, GET /api/v1/jobs/:id,
 * GET /api/v1/connections, POST /api/v1/connections/:uuid/test. When the config has no
 * datagrail_agent_credentials_location, every /api/v1 route answers 503 (no client can authenticate).
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, metrics } = deps;
  const schemas = readApiSchemas();
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'http' }, { serializers: { req: serializeRequest } }) as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    // Above the longest valid job id (128): a longer one is the schema's 400, never a 414 before auth.
    routerOptions: { maxParamLength: 512 },
    // Slow clients: a request (headers and body) must arrive within http_request_timeout_seconds (408
    // after that, checked every second), headers within 10 s at most, and an idle keep-alive socket is
    // closed after 5 s.
    serverFactory: (handler) => {
      const requestTimeout = config.agent.http_request_timeout_seconds * 1000;
      return createServer(
        { requestTimeout, headersTimeout: Math.min(requestTimeout, 10 * 1000), keepAliveTimeout: 5 * 1000, connectionsCheckingInterval: 1000 },
        handler,
      );
    },
    genReqId: () => randomUUID(),
  });
  app.setValidatorCompiler(makeValidatorCompiler(schemas));
  for (const s of schemas) app.addSchema(s);
  app.setErrorHandler(apiErrorHandler);
  const location = config.datagrail_agent_credentials_location;
  const tokenTtlSeconds = deps.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  const tokenKeys = location ? (deps.tokenKeys ?? makeTokenKeys({ secrets: deps.secrets, location, binding: tokenBindingOf(config), logger: deps.logger })) : undefined;
  const bearer = tokenKeys ? makeBearerHook(tokenKeys, metrics, tokenTtlSeconds) : undefined;
  app.setNotFoundHandler(async (request, reply) => {
    // Under /api/v1 an unauthenticated client learns nothing, not even which routes exist: 401 first.
    if (bearer && request.url.startsWith('/api/v1/')) {
      await bearer(request, reply);
      if (reply.sent) return reply;
    }
    return reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}; the API is described at /docs` });
  });
  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    // Job results, tokens and connection states are for the client that asked, never for a cache.
    if (request.url.startsWith('/api/v1/')) reply.header('cache-control', 'no-store');
    return payload;
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'dsr-agent',
        version: deps.version,
        description: 'Data subject request agent. Get a token from POST /api/v1/token (client credentials), then call /api/v1 with "Authorization: Bearer <token>".',
      },
      components: {
        securitySchemes: { oauth2: { type: 'oauth2', flows: { clientCredentials: { tokenUrl: '/api/v1/token', scopes: {} } } } },
      },
    },
    // Name components after the schema files' $id (JobRequest, Job, ...) rather than def-0, def-1.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  // staticCSP: /docs is served with a Content-Security-Policy (scripts and styles from this origin only).
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });

  await app.register(healthRoutes, { readiness: deps.readiness, metrics, version: deps.version, metricsAuth: config.agent.metrics_require_auth ? bearer : undefined });
  await app.register(tokenRoutes, {
    metrics,
    tokenKeys,
    tokenTtlSeconds,
    throttle: makeThrottle(deps.throttle),
  });
  await app.register(async (api) => {
    // Job API bodies are JSON only: anything else is 415, not a string that fails validation.
    api.removeContentTypeParser('text/plain');
    if (!config.datagrail_agent_credentials_location) {
      api.addHook('onRequest', async (_request, reply) =>
        reply.code(503).send({
          error: 'api_disabled',
          message: 'the job API is disabled: set datagrail_agent_credentials_location to the secret {"client_id", "client_secret"} that API clients authenticate with, then restart',
        }),
      );
    } else {
      api.addHook('onRequest', bearer!);
    }
    await api.register(jobRoutes, { config, queue: deps.queue });
    await api.register(connectionRoutes, { config, engine: deps.engine, readiness: deps.readiness });
  });

  metrics.observeQueue(deps.queue);
  await app.ready();
  // A cap on open sockets, so a flood of idle or dripping connections cannot exhaust the process.
  app.server.maxConnections = config.agent.http_max_connections;
  return app;
}
