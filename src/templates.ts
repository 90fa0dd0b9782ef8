/**
 * DataGrail templates: `{name}` substitution in a query's url, headers and body, with Python
 * str.format semantics (`{{` and `}}` are literal braces; only plain names are accepted).
 *
 * Parse once with {@link parseTemplate} (at config load), then render many times. Values are
 * looked up in the connection's secret first, then in the request's identifiers. Secrets are
 * trusted and inserted as they are; identifiers are encoded for where they land (see
 * {@link renderUrl}, {@link renderHeader}, {@link renderBody}) so they cannot change a request's
 * structure.
 */
import { parseSource, type Template } from './templates/parse.js';
import { attachPlan } from './templates/plan.js';

export type { Template, TemplatePart } from './templates/parse.js';
export type { TemplateValues } from './templates/values.js';
export { bodyKindFor, renderBody, type BodyKind } from './templates/body.js';
export { renderHeader } from './templates/header.js';
export { renderUrl } from './templates/url.js';

/**
 * Parse a template. Throws AgentError(TEMPLATE_INVALID) whose message gives the 1-based column
 * (and line, when the template has several) and the fix, e.g.
 * "unbalanced '}' at column 12: write '}}' for a literal brace". Rejects `{}`, `{0}`, `{a.b}`,
 * `{a[0]}`, `{a!r}`, `{a:>10}` and names outside `[A-Za-z_][A-Za-z0-9_]*`.
 * The result is frozen, and what rendering needs is precomputed here.
 */
export function parseTemplate(source: string): Template {
  const template = parseSource(source);
  attachPlan(template);
  return Object.freeze(template);
}
