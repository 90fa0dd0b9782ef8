import { renderUrl, renderHeader, renderBody, type TemplateValues } from '../templates.js';
import type { CompiledQuery } from './compile.js';

/** A rendered HTTP request, ready to send. Holds secrets and identifiers: never log it below DEBUG. */
export interface HttpRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
}

/**
 * A step applied to every rendered request before it is sent, e.g. a connection-level token
 * exchange. New auth schemes are new steps, not edits to the query path.
 */
export type RequestStep = (req: HttpRequest, signal: AbortSignal) => Promise<HttpRequest>;

/** Fill a compiled query's templates. Throws AgentError on a missing variable or an unusable identifier. */
export function renderRequest(q: CompiledQuery, values: TemplateValues): HttpRequest {
  const headers: Record<string, string> = {};
  for (const [name, t] of q.headers) headers[name] = renderHeader(t, values);
  return {
    method: q.method,
    url: renderUrl(q.url, values),
    headers,
    body: q.body ? renderBody(q.body.template, values, q.body.kind) : undefined,
  };
}

/** The request with every secret value replaced by `****`, for --dry-run output. */
export function renderMasked(q: CompiledQuery, values: TemplateValues): HttpRequest {
  const masked: Record<string, string> = {};
  for (const k of Object.keys(values.secrets)) masked[k] = '****';
  return renderRequest(q, { identifiers: values.identifiers, secrets: masked });
}
