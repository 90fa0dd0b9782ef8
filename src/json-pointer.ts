/**
 * RFC 6901 JSON pointers: `""` is the whole document, `/a/0/b~1c` walks member `a`, element 0,
 * member `b/c`. Used by `records`, `expect`, token `value`/`expires_in`/`expires_at` and the
 * paginate `total`/`cursor` fields. Parsed once at config load.
 */

/** What {@link valueAt} returns for a pointer that leads nowhere (distinct from `null`). */
export const ABSENT: unique symbol = Symbol('absent');

/**
 * Why `text` is not a JSON pointer, or undefined when it is one. A pointer is `""` or starts with
 * `/`; `~` must be followed by `0` (for `~`) or `1` (for `/`).
 */
export function pointerProblem(text: string): string | undefined {
  if (text !== '' && !text.startsWith('/')) {
    return `"${text}" is not a JSON pointer: it must be "" (the whole body) or start with "/", e.g. "/${text.replace(/^[#.$]*\/?/, '').replace(/\./g, '/')}"`;
  }
  const bad = /~(?![01])/.exec(text);
  if (bad) return `"${text}" has a "~" at position ${bad.index} not followed by 0 or 1: write "~0" for "~" and "~1" for "/"`;
  return undefined;
}

/** The pointer text of reference tokens: `["a", "b/c", 0]` → `"/a/b~1c/0"` (`~` as `~0`, `/` as `~1`). */
export function formatPointer(tokens: readonly (string | number)[]): string {
  return tokens.map((t) => `/${String(t).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

/** The reference tokens of a valid pointer: `"/a/b~1c"` → `["a", "b/c"]`, `""` → `[]`. */
export function parsePointer(text: string): readonly string[] {
  const problem = pointerProblem(text);
  if (problem) throw new TypeError(problem);
  if (text === '') return [];
  return text
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The value at `tokens` in `doc`, or {@link ABSENT}. Array indexes are decimal without leading zeros. */
export function valueAt(doc: unknown, tokens: readonly string[]): unknown {
  let cur: unknown = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9][0-9]*)$/.test(t) || Number(t) >= cur.length) return ABSENT;
      cur = cur[Number(t)];
    } else if (cur !== null && typeof cur === 'object' && Object.hasOwn(cur, t)) {
      cur = (cur as Record<string, unknown>)[t];
    } else {
      return ABSENT;
    }
  }
  return cur;
}

/** True when pointer `inner` is `outer` or inside it (token-wise prefix). */
export function isWithin(inner: readonly string[], outer: readonly string[]): boolean {
  return outer.length <= inner.length && outer.every((t, i) => inner[i] === t);
}

/** A JSON value's kind for messages ("an object", "a string", "null"), never the value itself. */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'object':
      return 'an object';
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    default:
      return typeof value;
  }
}
