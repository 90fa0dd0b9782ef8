/**
 * Masking of what a target sends back. Error bodies, GraphQL messages and DEBUG previews may echo
 * the request (an email in "no user peter@initech.com", a token in "invalid token eyJ…"), so
 * every identifier, secret and token value of the request is replaced by `***` before the text
 * goes into an error or a log line.
 */

/** Values shorter than this are not masked: "1" or "us" would shred every message they occur in. */
export const MIN_MASKED_LENGTH = 3;

/** Replaces every sensitive value in a text by `***`. */
export type Mask = (text: string) => string;

/** A mask that leaves text as it is (for code paths that carry no request values). */
export const noMask: Mask = (text) => text;

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Build a mask for these values, matched whatever their case. Each value is also masked in the
 * forms a target is likely to echo it in: JSON-escaped, percent-encoded and form-encoded. Longer values are replaced first, so a value
 * containing another is masked whole.
 */
export function makeMask(values: Iterable<unknown>): Mask {
  const forms = new Set<string>();
  for (const v of values) {
    if (typeof v !== 'string' || v.length < MIN_MASKED_LENGTH) continue;
    forms.add(v);
    forms.add(JSON.stringify(v).slice(1, -1));
    try {
      const encoded = encodeURIComponent(v);
      forms.add(encoded);
      forms.add(encoded.replace(/%20/g, '+')); // form encoding
    } catch {
      // a lone surrogate has no percent-encoded form
    }
  }
  if (forms.size === 0) return noMask;
  // Case-insensitive: servers echo emails lower-cased.
  const pattern = new RegExp([...forms].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|'), 'gi');
  return (text) => text.replace(pattern, '***');
}
