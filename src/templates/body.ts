import { AgentError, ErrorCodes } from '../errors.js';
import type { Template } from './parse.js';
import { JSON_VALUE, planOf, type Plan } from './plan.js';
import { percentEncode } from './url.js';
import { fill, type IdentifierEncoder, type TemplateValues } from './values.js';

/**
 * How identifier values are encoded into a body:
 * - `json`: inside a JSON string literal of the template as escaped string content, elsewhere as a
 *   complete JSON string literal (so `{{"id": {user_id}}}` sends `{"id": "42"}`);
 * - `form`: application/x-www-form-urlencoded (percent-encoding, space as `+`);
 * - `text`: no encoding at all. Use a JSON or form Content-Type for structured bodies.
 * Secrets go in as they are in every kind.
 */
export type BodyKind = 'json' | 'form' | 'text';

function kindFromContentType(contentType: string | undefined): BodyKind | undefined {
  // A templated Content-Type is only known per request: judge by the body instead.
  if (contentType === undefined || contentType.includes('{') || contentType.includes('}')) return undefined;
  const media = contentType.split(';', 1)[0].trim().toLowerCase();
  if (media === '') return undefined;
  if (media === 'application/json' || media === 'text/json' || media.endsWith('+json')) return 'json';
  if (media === 'application/x-www-form-urlencoded') return 'form';
  return 'text';
}

/** True when the skeleton, with every placeholder filled as a string, is a JSON object or array. */
function skeletonIsJson(plan: Plan): boolean {
  let filled = plan.literals[0];
  for (let i = 0; i < plan.names.length; i++) filled += (plan.json[i] === JSON_VALUE ? '"x"' : 'x') + plan.literals[i + 1];
  const start = filled.trimStart()[0];
  if (start !== '{' && start !== '[') return false;
  try {
    JSON.parse(filled);
    return true;
  } catch {
    return false;
  }
}

function assertJsonSafe(plan: Plan): void {
  if (plan.jsonEscapeAt < 0) return;
  throw new AgentError(
    ErrorCodes.TEMPLATE_INVALID,
    `placeholder {${plan.names[plan.jsonEscapeAt]}} in a JSON body comes right after a lone backslash inside a JSON string, ` +
      'so its value would complete the escape sequence: remove the backslash, or double it for a literal backslash',
  );
}

/**
 * Decide how identifier values are encoded into a body. From the Content-Type header value when
 * given: application/json, text/json or any `+json` type → `json`;
 * application/x-www-form-urlencoded → `form`; any other type → `text`. Without one (or when it is
 * empty or itself a template): `json` when the template, with its placeholders filled as strings,
 * is a JSON object or array, else `text`.
 * Throws AgentError(TEMPLATE_INVALID) when the result is `json` and a placeholder directly follows
 * a lone backslash inside a JSON string (its value would complete the escape).
 */
export function bodyKindFor(template: Template, contentType: string | undefined): BodyKind {
  const plan = planOf(template);
  const kind = kindFromContentType(contentType) ?? (skeletonIsJson(plan) ? 'json' : 'text');
  if (kind === 'json') assertJsonSafe(plan);
  return kind;
}

const formEncode: IdentifierEncoder = (value, name) => percentEncode(value, name).replace(/%20/g, '+');

/**
 * Fill a body template; see {@link BodyKind} for how identifiers are encoded. Text bodies get no
 * encoding: identifiers go in exactly as given. Throws AgentError(TEMPLATE_MISSING_VARIABLE) for a
 * name with no value, AgentError(IDENTIFIER_INVALID) for a lone surrogate in a form body, and
 * AgentError(TEMPLATE_INVALID) as {@link bodyKindFor} does for `json`.
 */
export function renderBody(t: Template, v: TemplateValues, kind: BodyKind): string {
  const plan = planOf(t);
  if (kind === 'json') {
    assertJsonSafe(plan);
    const contexts = plan.json;
    return fill(plan, v, 'the body', (value, _name, i) =>
      contexts[i] === JSON_VALUE ? JSON.stringify(value) : JSON.stringify(value).slice(1, -1),
    );
  }
  return fill(plan, v, 'the body', kind === 'form' ? formEncode : null);
}
