/** Helpers for the real-API feature tests (tokens, records, expect, paginate, graphql). */
import type http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReportSink } from '../../src/storage/sink.js';
import type { Received } from './target.js';

export { sleep };

/** One report the engine wrote. */
export interface Put {
  uuid: string;
  n: number;
  csv: string;
}

/** A sink that keeps every report in memory, in the order written. */
export function memorySink(): { sink: ReportSink; puts: Put[] } {
  const puts: Put[] = [];
  return {
    puts,
    sink: {
      put: async (uuid, n, csv) => {
        puts.push({ uuid, n, csv });
        return `${uuid}/report_${n}.csv`;
      },
    },
  };
}

/** Poll `check` every `intervalMs` until it returns true; throws once `timeoutMs` has passed. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** The path of a received request (without the query string). */
export const pathOf = (r: { url?: string }): string => new URL(r.url ?? '/', 'http://x').pathname;

/** The received requests to one path. */
export const to = (received: readonly Received[], path: string): Received[] => received.filter((r) => pathOf(r) === path);

/** A query-string parameter of a received request ('' when present and empty, null when absent). */
export const param = (r: { url?: string }, name: string): string | null => new URL(r.url ?? '/', 'http://x').searchParams.get(name);

/** The bearer token a request carried, or undefined. */
export const bearer = (r: { headers: http.IncomingHttpHeaders }): string | undefined => /^Bearer (.*)$/s.exec(String(r.headers.authorization ?? ''))?.[1];

/** `encodeURIComponent` plus !'()*, as the engine percent-encodes identifiers and tokens in a URL. */
export const percent = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Reply with a JSON body after `ms` milliseconds (lets concurrent callers pile up). */
export function later(res: http.ServerResponse, ms: number, send: () => void): void {
  const t = setTimeout(send, ms);
  res.on('close', () => clearTimeout(t));
}

/** Every form a sensitive value could leak in: as is, JSON-escaped, percent-encoded, form-encoded. */
export function leakForms(value: string): string[] {
  return [...new Set([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value), percent(value), percent(value).replace(/%20/g, '+')])];
}

/** The forms of `values` found in `text` (empty when nothing leaked). */
export function leaks(text: string, values: readonly string[]): string[] {
  return values.flatMap(leakForms).filter((f) => text.includes(f));
}
