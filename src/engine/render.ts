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

/**
 * Fill a compiled query's templates. A GraphQL query becomes a JSON body
 * `{"query", "variables", "operationName"}` whose variables are the rendered templates as JSON
 * strings, with `Content-Type: application/json` unless a header sets it.
 * Throws AgentError on a missing variable or an unusable identifier.
 */
export function renderRequest(q: CompiledQuery, values: TemplateValues): HttpRequest {
  const headers: Record<string, string> = {};
  for (const [name, t] of q.headers) headers[name] = renderHeader(t, values);
  let body: string | undefined;
  if (q.body) body = renderBody(q.body.template, values, q.body.kind);
  else if (q.graphql) {
    const variables: Record<string, string> = {};
    // Rendered as text, then JSON-encoded as a whole: an identifier is always one JSON string value.
    for (const [name, t] of q.graphql.variables) variables[name] = renderBody(t, values, 'text');
    body = JSON.stringify({ query: q.graphql.document, variables, ...(q.graphql.operationName && { operationName: q.graphql.operationName }) });
    if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json';
  }
  return { method: q.method, url: renderUrl(q.url, values), headers, body };
}

/**
 * The request with every secret value replaced by `****` and every token by `<token name>`, for
 * --dry-run output. `extra` (pagination variables) is filled like identifiers.
 */
export function renderMasked(q: CompiledQuery, values: TemplateValues, tokenNames: Iterable<string> = []): HttpRequest {
  const masked: Record<string, string> = {};
  for (const k of Object.keys(values.secrets)) masked[k] = '****';
  // Tokens are shown as placeholders and go in as they are (like secrets), so they stay readable.
  for (const name of tokenNames) masked[name] = `<token ${name}>`;
  return renderRequest(q, { identifiers: values.identifiers, secrets: masked });
}
