/** POST /api/v1/jobs and GET /api/v1/jobs/:id. */
import { ID_PATTERN } from '../../names.js';
import type { FastifyInstance } from 'fastify';
import type { AgentConfig, RequestType } from '../../config/types.js';
import { assertIdentifiers, findConnection } from '../../engine/index.js';
import { isFinal } from '../../queue/common.js';
import type { JobQueue, JobView } from '../../queue/types.js';
import { ref } from '../schemas.js';

/** What the job routes need. */
export interface JobRouteOptions {
  config: AgentConfig;
  queue: JobQueue;
}

/** The body of POST /api/v1/jobs, as schemas/api/job-request.schema.json admits it. */
interface JobRequestBody {
  type: RequestType;
  identifiers: Record<string, string>;
  connections?: string[];
  id?: string;
}

/** Longest `?wait=` in seconds. */
export const MAX_WAIT_SECONDS = 60;


/** 503 queue_unavailable (with Retry-After): the journal's disk or Redis cannot record jobs right now; nothing was accepted. */
const errors = { 400: ref('Error'), 401: ref('Error'), 404: ref('Error'), 503: ref('Error') };
const security = [{ oauth2: [] }];

/** Register the job routes (inside the bearer-protected context). */
export async function jobRoutes(app: FastifyInstance, opts: JobRouteOptions): Promise<void> {
  const { config, queue } = opts;

  app.post<{ Body: JobRequestBody; Querystring: { wait?: number } }>(
    '/api/v1/jobs',
    {
      schema: {
        summary: 'Submit a data subject request',
        description:
          'Validates the request and every named connection, then queues the job durably and answers 202 {id, status}. ' +
          'With an `id` the call is idempotent: a known id answers 202 with that job\'s id and current status and never runs it twice. ' +
          `With ?wait=SECONDS (0-${MAX_WAIT_SECONDS}) the call answers 200 with the full job once it is final within that time, else 202.`,
        tags: ['jobs'],
        security,
        body: ref('JobRequest'),
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { wait: { description: `Seconds to wait for the result, 0-${MAX_WAIT_SECONDS}. Default 0.`, type: 'integer', minimum: 0, maximum: MAX_WAIT_SECONDS } },
        },
        response: { 200: ref('Job'), 202: ref('JobAccepted'), ...errors, 409: ref('Error'), 413: ref('Error'), 415: ref('Error') },
      },
    },
    async (request, reply) => {
      const { type, identifiers, connections, id } = request.body;
      assertIdentifiers(identifiers);
      // Unknown connections are the client's mistake: refuse before anything is queued.
      for (const key of connections ?? []) findConnection(config, key);
      const { job, created } = await queue.submit({ type, identifiers, ...(connections ? { connections } : {}), ...(id !== undefined ? { id } : {}) });
      request.log.info({ jobId: job.id, type, created }, created ? 'job queued' : 'job id already known');
      reply.header('location', `/api/v1/jobs/${encodeURIComponent(job.id)}`);

      const wait = request.query.wait ?? 0;
      let view: JobView = job;
      if (wait > 0 && !isFinal(view.status)) view = (await queue.waitFor(job.id, wait * 1000)) ?? view;
      if (wait > 0 && isFinal(view.status)) return reply.code(200).send(view);
      return reply.code(202).send({ id: view.id, status: view.status });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/jobs/:id',
    {
      schema: {
        summary: 'Get a job and its results',
        description: 'Access reports are listed by location (file path or s3:// URL), never inlined. Identifiers are never returned.',
        tags: ['jobs'],
        security,
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: ID_PATTERN.source } } },
        response: { 200: ref('Job'), ...errors },
      },
    },
    async (request, reply) => {
      const job = await queue.get(request.params.id);
      if (!job) return reply.code(404).send({ error: 'not_found', message: `no job with id '${request.params.id}'; use the id POST /api/v1/jobs answered with` });
      return job;
    },
  );
}
