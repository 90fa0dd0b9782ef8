/**
 * How the job API answers failures: one `{"error", "message"}` shape, a 4xx for anything the client
 * can fix (with what to fix), a 500 with a generic message (details in the log) for anything else.
 */
import { ID_PATTERN } from '../names.js';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isAgentError, ErrorCodes } from '../errors.js';

/** The body of every job API error. */
export interface ApiError {
  error: string;
  message: string;
}

/** One ajv error as fastify hands it over. */
interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
  /** Set when the error is about a property name (propertyNames). */
  propertyName?: string;
}

/** The identifier value pattern of job-request.schema.json: no C0 control characters, no DEL. */
const NO_CONTROL_CHARS = '^[^\\u0000-\\u001F\\u007F]*$';

const BODY_LIMIT_HINT = 'send at most 64 KiB: a job needs only its type, identifiers and optional connections';

/** Turn one ajv error into a sentence naming the field, e.g. "body/type must be one of access, delete". */
export function describeValidationIssue(issue: ValidationIssue, context: string): string {
  const where = `${context}${issue.instancePath}`;
  const p = issue.params;
  if (issue.propertyName !== undefined) {
    return `${where} has an invalid property name: identifier names are snake_case (letters, digits, underscores), e.g. user_id`;
  }
  if (issue.keyword === 'pattern' && p.pattern === NO_CONTROL_CHARS) return `${where} must not contain control characters (CR, LF, NUL, ...)`;
  if (issue.keyword === 'pattern' && p.pattern === ID_PATTERN.source) {
    return `${where} must be 1-128 characters of A-Z, a-z, 0-9, ".", "_" or "-", without ".." (it becomes a file name and a URL segment)`;
  }
  switch (issue.keyword) {
    case 'enum':
      return `${where} must be one of ${(p.allowedValues as unknown[]).map(String).join(', ')}`;
    case 'required':
      return `${where} must have the property '${String(p.missingProperty)}'`;
    case 'additionalProperties':
      return `${where} has an unknown property '${String(p.additionalProperty).slice(0, 64)}'; remove it or check its spelling`;
    case 'type':
      return `${where} must be ${/^[aeiou]/.test(String(p.type)) ? 'an' : 'a'} ${String(p.type)}`;
    case 'minProperties':
      return `${where} must have at least ${String(p.limit)} propert${p.limit === 1 ? 'y' : 'ies'}, e.g. {"email": "peter@initech.com"}`;
    case 'maxProperties':
      return `${where} must have at most ${String(p.limit)} properties`;
    case 'minLength':
      return p.limit === 1 ? `${where} must not be empty` : `${where} must be at least ${String(p.limit)} characters long`;
    case 'maxLength':
      return `${where} must be at most ${String(p.limit)} characters long`;
    case 'minItems':
      return `${where} must have at least ${String(p.limit)} item${p.limit === 1 ? '' : 's'}; omit it to use every live connection`;
    case 'maxItems':
      return `${where} must have at most ${String(p.limit)} items`;
    case 'propertyNames':
      return `${where} has an invalid property name: identifier names are snake_case (letters, digits, underscores), e.g. user_id`;
    case 'pattern':
      return `${where} must match ${String(p.pattern)}`;
    case 'maximum':
    case 'minimum':
      return `${where} must be ${issue.keyword === 'maximum' ? '<=' : '>='} ${String(p.limit)}`;
    default:
      return `${where} ${issue.message ?? 'is invalid'}`;
  }
}

/** Seconds a client is told to wait (Retry-After) when the job queue is unavailable. */
export const QUEUE_RETRY_AFTER_SECONDS = 5;

/** The API error for a fastify/AgentError failure, or undefined when it is a server fault (500). */
export function toClientError(err: FastifyError): { status: number; body: ApiError; retryAfter?: number } | undefined {
  if (err.validation) {
    const issue = err.validation[0] as unknown as ValidationIssue;
    return { status: 400, body: { error: 'invalid_request', message: describeValidationIssue(issue, err.validationContext ?? 'request') } };
  }
  if (isAgentError(err, ErrorCodes.BAD_REQUEST)) return { status: 400, body: { error: 'invalid_request', message: err.message } };
  if (isAgentError(err, ErrorCodes.CONNECTION_NOT_FOUND)) return { status: 404, body: { error: 'connection_not_found', message: err.message } };
  if (isAgentError(err, ErrorCodes.JOB_CONFLICT)) return { status: 409, body: { error: 'conflict', message: err.message } };
  // Not a client mistake, but not a fault either: the queue cannot record jobs right now, so nothing was accepted.
  if (isAgentError(err, ErrorCodes.QUEUE_UNAVAILABLE)) {
    return { status: 503, body: { error: 'queue_unavailable', message: err.message }, retryAfter: QUEUE_RETRY_AFTER_SECONDS };
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, body: { error: 'payload_too_large', message: `the request body is too large; ${BODY_LIMIT_HINT}` } };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, body: { error: 'unsupported_media_type', message: 'unsupported Content-Type; send the body as application/json' } };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, body: { error: 'invalid_request', message: 'the body is not valid JSON; send a JSON object such as {"type": "access", "identifiers": {"email": "..."}}' } };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, body: { error: 'invalid_request', message: 'the body is empty but Content-Type is application/json; send a JSON object or drop the header' } };
  }
  // Other fastify client errors (bad Content-Length, aborted body, ...) keep their status and safe message.
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return { status, body: { error: 'invalid_request', message: err.message } };
  return undefined;
}

/** fastify error handler for the job API. */
export function apiErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const known = toClientError(err);
  if (known) {
    request.log.info({ status: known.status, error: known.body.error }, 'request rejected');
    if (known.retryAfter !== undefined) void reply.header('retry-after', String(known.retryAfter));
    void reply.code(known.status).send(known.body);
    return;
  }
  // Only the error's class and code at ERROR: its message or stack may quote input, so they are logged at DEBUG.
  request.log.error({ err: { type: err.name, code: err.code } }, 'request failed');
  request.log.debug({ err }, 'request failure detail');
  void reply.code(500).send({ error: 'internal_error', message: `the agent failed unexpectedly; the log has the details under request id ${request.id}` });
}
