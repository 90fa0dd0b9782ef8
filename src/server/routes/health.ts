/** Unauthenticated operational routes: GET /, /healthz, /readyz, /metrics, /openapi.json. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Metrics } from '../metrics.js';
import type { Readiness } from '../readiness.js';
import { ref } from '../schemas.js';

/** What the operational routes need. */
export interface HealthRouteOptions {
  readiness: Readiness;
  metrics: Metrics;
  version: string;
  /** When set (agent.metrics_require_auth), /metrics requires a bearer token like /api/v1. */
  metricsAuth?: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
}

/** Register the operational routes. */
export async function healthRoutes(app: FastifyInstance, opts: HealthRouteOptions): Promise<void> {
  const { readiness, metrics, version } = opts;

  app.get(
    '/',
    {
      schema: {
        summary: 'Agent version',
        tags: ['operations'],
        response: { 200: { type: 'object', required: ['version'], properties: { version: { type: 'string' } } } },
      },
    },
    async () => ({ version }),
  );

  // DataGrail's agent answers its health check at /api/v1/hc: the same liveness, so its deployment templates work unchanged.
  for (const path of ['/healthz', '/api/v1/hc']) app.get(
    path,
    {
      schema: {
        hide: path !== '/healthz', // the alias is documented with /healthz, not as a route of its own
        summary: 'Liveness: 200 while the process can serve (no upstream I/O)',
        tags: ['operations'],
        response: { 200: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } } } },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: 200 when the agent can take jobs, else 503 naming the failing checks',
        description:
          'Reads the outcome of the background checks (config, credentials manager, storage, live connections\' test queries), ' +
          'which run every agent.readiness_interval_seconds; a probe never reaches a target. 503 {"status": "draining"} during shutdown.',
        tags: ['operations'],
        response: { 200: ref('Readiness'), 503: ref('Readiness') },
      },
    },
    async (_request, reply) => {
      const snap = readiness.snapshot();
      return reply.code(snap.status === 'ok' ? 200 : 503).header('cache-control', 'no-store').send(snap);
    },
  );

  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics (text exposition format)', tags: ['operations'], produces: ['text/plain'] }, ...(opts.metricsAuth && { onRequest: opts.metricsAuth }) },
    async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()),
  );

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
