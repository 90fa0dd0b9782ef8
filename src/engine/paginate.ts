/**
 * Pagers (query field `paginate`): which variables the next request gets and whether there is a
 * next request. A query without `paginate` reads one page. The runner counts pages against
 * max_pages; a pager only decides from what a page held.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { AgentError, ErrorCodes } from '../errors.js';
import { ABSENT, describeType } from '../json-pointer.js';
import type { Paginate } from '../config/types.js';
import { pointerOf as pointer, type Pointer } from './compile.js';

/** What one page's response held, as far as a pager cares. */
export interface PageRead {
  /** Records the page held. */
  readonly records: number;
  /** A valid status with no data (204, or a listed non-2xx such as 404): there is no next page. */
  readonly noData: boolean;
  /** The values at the pager's `captures`, in order (ABSENT when not in the body). */
  readonly values: readonly unknown[];
  readonly headers: IncomingHttpHeaders;
  /** The URL this page was requested from. */
  readonly url: string;
}

/** Walks the pages of one query run. */
export interface Pager {
  /** Pointers the pager reads from each page. */
  readonly captures: readonly Pointer[];
  /** Template variables of the next request ({page}, {offset}, {page_size}, {cursor}). */
  variables(): Record<string, string>;
  /** A URL to request instead of the rendered one (a followed link), or undefined. */
  nextUrl(): string | undefined;
  /** After a page: true when another page must be read. */
  advance(page: PageRead): boolean;
}

const NO_VARIABLES: Record<string, string> = Object.freeze({}) as Record<string, string>;
/** One request, no pages; stateless, so one instance serves every query without `paginate`. */
const SINGLE: Pager = Object.freeze({ captures: [], variables: () => NO_VARIABLES, nextUrl: () => undefined, advance: () => false });

/** The value at a captured pointer as a count, or undefined when absent or not a number. */
function countAt(v: unknown): number | undefined {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
}

function sized(p: Paginate, kind: 'page' | 'offset'): Pager {
  const size = p.size!;
  const captures = p.total !== undefined ? [pointer(p.total)] : [];
  let page = p.start ?? 1;
  let offset = 0;
  let read = 0;
  return {
    captures,
    variables: (): Record<string, string> =>
      kind === 'page' ? { page: String(page), page_size: String(size) } : { offset: String(offset), page_size: String(size) },
    nextUrl: () => undefined,
    advance(r) {
      if (r.noData || r.records === 0 || r.records < size) return false;
      read += r.records;
      const total = captures.length ? countAt(r.values[0]) : undefined;
      if (total !== undefined && read >= total) return false;
      page++;
      offset += r.records;
      return true;
    },
  };
}

function cursor(p: Paginate): Pager {
  const at = pointer(p.cursor!);
  let current = '';
  return {
    captures: [at],
    variables: () => ({ cursor: current }),
    nextUrl: () => undefined,
    advance(r) {
      if (r.noData) return false;
      const v = r.values[0];
      if (v === ABSENT || v === null || v === '') return false;
      if (typeof v !== 'string' && typeof v !== 'number') {
        throw new AgentError(ErrorCodes.RESPONSE_MALFORMED, `paginate cursor "${at.text}" holds ${describeType(v)}; a cursor must be a string or a number`);
      }
      if (String(v) === current) return false;
      current = String(v);
      return true;
    },
  };
}

/** The target of the first `rel="next"` link in Link header values (RFC 8288), unresolved. */
export function nextLink(header: string | string[] | undefined): string | undefined {
  for (const value of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
    // <uri>; param; param, <uri>; … — a comma inside <…> or a quoted string does not split.
    const re = /<([^>]*)>((?:\s*;\s*[^;,"=\s]+\s*(?:=\s*(?:"(?:[^"\\]|\\.)*"|[^;,]*))?)*)/g;
    for (let m = re.exec(value); m; m = re.exec(value)) {
      const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]+))/i.exec(m[2] ?? '');
      const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
      if (rels.includes('next')) return m[1];
    }
  }
  return undefined;
}

function link(): Pager {
  let next: string | undefined;
  let origin: string | undefined;
  return {
    captures: [],
    variables: () => ({}),
    nextUrl: () => next,
    advance(r) {
      origin ??= new URL(r.url).origin;
      if (r.noData) return false;
      const target = nextLink(r.headers.link);
      if (target === undefined) return false;
      let url: URL;
      try {
        url = new URL(target, r.url);
      } catch {
        throw new AgentError(ErrorCodes.RESPONSE_UNEXPECTED, 'the Link rel="next" header holds a URL that does not parse');
      }
      // Credentials and identifiers never go to a host the config did not name.
      if (url.origin !== origin) {
        throw new AgentError(
          ErrorCodes.RESPONSE_UNEXPECTED,
          `the Link rel="next" header points to another origin (${url.protocol}//${url.host}) than the query's (${origin}); refusing to send the request's credentials there`,
        );
      }
      if (url.href === r.url) return false;
      next = url.href;
      return true;
    },
  };
}

/** The pager for a query's `paginate` (normalized: defaults applied), or a single page without one. */
export function makePager(p: Paginate | undefined): Pager {
  if (!p) return SINGLE;
  switch (p.style) {
    case 'page':
    case 'offset':
      return sized(p, p.style);
    case 'cursor':
      return cursor(p);
    case 'link':
      return link();
  }
}

/** The variables the first page of a query is rendered with (for --dry-run). */
export function firstPageVariables(p: Paginate | undefined): Record<string, string> {
  return makePager(p).variables();
}
