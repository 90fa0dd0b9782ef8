/** GET /api/v1/connections and POST /api/v1/connections/:uuid/test. */
import type { FastifyInstance } from 'fastify';
import type { AgentConfig } from '../../config/types.js';
import { findConnection, type Engine } from '../../engine/index.js';
import type { Readiness } from '../readiness.js';
import { ref } from '../schemas.js';

/** What the connection routes need. */
export interface ConnectionRouteOptions {
  config: AgentConfig;
  engine: Engine;
  readiness: Readiness;
}

const security = [{ oauth2: [] }];
const errors = { 401: ref('Error'), 404: ref('Error') };

/** Register the connection routes (inside the bearer-protected context). */
export async function connectionRoutes(app: FastifyInstance, opts: ConnectionRouteOptions): Promise<void> {
  const { config, engine, readiness } = opts;

  app.get(
    '/api/v1/connections',
    {
      schema: {
        summary: 'List the configured connections',
        description: 'Never shows a secret, a credentials location or a query template.',
        tags: ['connections'],
        security,
        response: { 200: { type: 'array', items: ref('ConnectionInfo') }, 401: ref('Error') },
      },
    },
    async () =>
      // Built field by field: whatever the config grows, only these reach a client.
      config.connections.map((c) => ({
        name: c.name,
        uuid: c.uuid,
        connector_type: c.connector_type,
        capabilities: [...c.capabilities],
        mode: c.mode,
        last_test: readiness.lastTest(c.uuid),
      })),
  );

  app.post<{ Params: { uuid: string } }>(
    '/api/v1/connections/:uuid/test',
    {
      schema: {
        summary: "Run a connection's test queries now",
        description: 'Runs the test queries of the connection (by uuid, or by name) at once and records the outcome as its last_test.',
        tags: ['connections'],
        security,
        params: { type: 'object', required: ['uuid'], properties: { uuid: { type: 'string', minLength: 1, maxLength: 256 } } },
        response: { 200: ref('ConnectionTest'), ...errors },
      },
    },
    async (request) => {
      const conn = findConnection(config, request.params.uuid); // CONNECTION_NOT_FOUND → 404
      const [result] = await engine.test([conn.uuid]);
      readiness.record(result!);
      request.log.info({ connection: conn.name, healthy: result!.healthy }, 'connection tested');
      return { uuid: result!.uuid, name: result!.name, healthy: result!.healthy, duration_ms: result!.duration_ms, ...(result!.error ? { error: result!.error } : {}) };
    },
  );
}
