/** Helpers shared by the config checks: JSON pointers and the final problem list. */
import type { ConfigProblem } from '../errors.js';
import { formatPointer } from '../json-pointer.js';

/** Build a JSON pointer (RFC 6901) from path segments, escaping `~` and `/`. */
export function pointer(...segments: readonly (string | number)[]): string {
  return formatPointer(segments);
}

/** Split a JSON pointer into its unescaped segments (`''` → `[]`). */
export function pointerSegments(path: string): string[] {
  if (path === '') return [];
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}

const isIndex = (s: string): boolean => /^(0|[1-9][0-9]*)$/.test(s);

/** Order two pointers segment by segment, array indices numerically (`/a/2` before `/a/10`). */
export function comparePaths(a: string, b: string): number {
  const sa = pointerSegments(a);
  const sb = pointerSegments(b);
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const x = sa[i];
    const y = sb[i];
    if (x === y) continue;
    if (isIndex(x) && isIndex(y)) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return sa.length - sb.length;
}

/** Drop repeated problems (same path and message) and sort by path, then message. */
export function sortProblems(problems: readonly ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  const out: ConfigProblem[] = [];
  for (const p of problems) {
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: p.path, message: p.message });
  }
  return out.sort((a, b) => comparePaths(a.path, b.path) || (a.message < b.message ? -1 : a.message > b.message ? 1 : 0));
}

/** True for a plain JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
