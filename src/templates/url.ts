import type { Template } from './parse.js';
import { planOf, URL_AUTHORITY, URL_BEFORE_QUERY } from './plan.js';
import { invalidIdentifier, missingVariable, type TemplateValues } from './values.js';

const hasOwn = Object.hasOwn;
/** RFC 3986 sub-delimiters that encodeURIComponent leaves alone. */
const SUB_DELIMS = /[!'()*]/g;
const HAS_SUB_DELIM = /[!'()*]/;
const subDelim = (c: string): string => `%${c.charCodeAt(0).toString(16).toUpperCase()}`;
/** The longest path segment a URL parser resolves as a dot segment: `%2e%2e`. */
const MAX_DOT_SEGMENT = 6;

/**
 * Percent-encode an identifier value (encodeURIComponent, plus `!'()*`). Throws
 * AgentError(IDENTIFIER_INVALID) for a lone surrogate, which has no UTF-8 form.
 */
export function percentEncode(value: string, name: string): string {
  let out: string;
  try {
    out = encodeURIComponent(value);
  } catch {
    throw invalidIdentifier(name, 'is not well-formed Unicode (it holds a lone surrogate): fix the value at its source');
  }
  return HAS_SUB_DELIM.test(out) ? out.replace(SUB_DELIMS, subDelim) : out;
}

const isDelimiter = (c: string): boolean => c === '/' || c === '?' || c === '#' || c === '\\';

/**
 * Throw when the encoded identifier at out[start, end) makes its path segment (or authority) empty,
 * `.` or `..`: a URL parser would then drop or climb a segment, or pick another host.
 */
function checkSegment(out: string, start: number, end: number, name: string): void {
  let l = start;
  while (l > 0 && !isDelimiter(out[l - 1])) l--;
  if (l > 0 && out[l - 1] !== '/' && out[l - 1] !== '\\') return; // a secret moved us into the query
  let r = end;
  while (r < out.length && !isDelimiter(out[r])) r++;
  const segment = out.slice(l, r).replace(/%2e/gi, '.');
  if (segment === '' || segment === '.' || segment === '..') {
    throw invalidIdentifier(
      name,
      "would make a URL path segment empty, '.' or '..', which changes the path: pass a non-empty identifier other than '.' and '..'",
    );
  }
}

/**
 * Fill a URL template. Secrets go in as they are (e.g. a base URL); identifiers are
 * percent-encoded, so they can never change the path segments, query parameters or fragment, and an
 * identifier placeholder in the scheme or authority (`https://{tenant}.acme.com`) is refused. An identifier that would leave a path segment empty, `.` or `..` throws
 * AgentError(IDENTIFIER_INVALID); a name with no value throws AgentError(TEMPLATE_MISSING_VARIABLE).
 */
export function renderUrl(t: Template, v: TemplateValues): string {
  const { literals, names, url } = planOf(t);
  const { secrets, identifiers } = v;
  let out = literals[0];
  let checks: number[] | undefined; // [placeholder index, start, end] triples
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    let value: string | undefined;
    if (hasOwn(secrets, name) && (value = secrets[name]) != null) out += value;
    else if (hasOwn(identifiers, name) && (value = identifiers[name]) != null) {
      // A request value (identifier, token, cursor) never decides where the request goes.
      if (url[i] === URL_AUTHORITY) {
        throw invalidIdentifier(
          name,
          'would fill the scheme or host of the URL, which would let a request value choose where credentials are sent: ' +
            'only a secret key may go there; move the placeholder to the path or query',
        );
      }
      const encoded = percentEncode(String(value), name);
      if (url[i] === URL_BEFORE_QUERY && encoded.length <= MAX_DOT_SEGMENT) {
        (checks ??= []).push(i, out.length, out.length + encoded.length);
      }
      out += encoded;
    } else throw missingVariable(name, 'the URL');
    out += literals[i + 1];
  }
  if (checks !== undefined) {
    for (let k = 0; k < checks.length; k += 3) checkSegment(out, checks[k + 1], checks[k + 2], names[checks[k]]);
  }
  return out;
}
