import type { Template } from './parse.js';
import { planOf } from './plan.js';
import { fill, invalidIdentifier, type TemplateValues } from './values.js';

/** Anything but HTAB, visible ASCII, space and Latin-1: what undici refuses in a header value. */
const UNSENDABLE = /[^\t\x20-\x7e\x80-\xff]/;
const BREAK_OR_NUL = /[\r\n\0]/;

function checkHeaderIdentifier(value: string, name: string): string {
  if (!UNSENDABLE.test(value)) return value;
  if (BREAK_OR_NUL.test(value)) {
    throw invalidIdentifier(
      name,
      'contains a line break or NUL, which cannot go into header values: remove it, or move the placeholder to the URL or body',
    );
  }
  throw invalidIdentifier(
    name,
    'contains a control character or a character outside Latin-1, which an HTTP header cannot carry: ' +
      'move the placeholder to the URL or body, where it is encoded',
  );
}

/**
 * Fill a header value template. Secrets and identifiers go in as they are; an identifier holding
 * CR, LF or NUL (header injection) or anything else an HTTP header cannot carry (control
 * characters, characters above U+00FF) throws AgentError(IDENTIFIER_INVALID). A name with no value
 * throws AgentError(TEMPLATE_MISSING_VARIABLE).
 */
export function renderHeader(t: Template, v: TemplateValues): string {
  return fill(planOf(t), v, 'a header', checkHeaderIdentifier);
}
