import type { Dispatcher } from 'undici';
import { AgentError, ErrorCodes } from '../errors.js';
import { splitJsonArray } from '../reports/json-array.js';
import { flatten } from '../reports/flatten.js';
import { toReportCsv } from '../reports/csv.js';
import type { ReportSink } from '../storage/sink.js';
import type { Logger } from '../logger.js';

type Body = Dispatcher.ResponseData['body'];

/** Read at most `limit` bytes of a body as text (for DEBUG logs), discarding the rest. */
export async function readPreview(body: Body, limit = 2048): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (size < limit) chunks.push(chunk.subarray(0, limit - size));
    size += chunk.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Status-only responses (test, delete, optout): the body is read only to log it at DEBUG. */
export async function consumeStatusBody(body: Body, log: Logger): Promise<void> {
  if (log.isLevelEnabled('debug')) log.debug({ body: await readPreview(body) }, 'response body (first 2 KiB)');
  else await body.dump();
}

/** Run a body reader; on failure log the malformed body's preview (DEBUG only) and release the socket. */
async function readingBody<T>(body: Body, log: Logger, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    const preview = (err as { bodyPreview?: string } | undefined)?.bodyPreview;
    if (preview !== undefined) log.debug({ body: preview }, 'malformed response body (first 2 KiB)');
    body.destroy();
    throw err;
  }
}

/** Where an access query's reports go and how they are numbered across the connection's queries. */
export interface AccessOutput {
  readonly sink: ReportSink;
  readonly connectionUuid: string;
  /** Locations written so far, in order; report numbers continue across queries. */
  readonly reports: string[];
}

/**
 * Stream an access response: each object of the top-level array becomes one report, written as
 * soon as the object is complete. Memory is bounded by the largest object.
 */
export async function writeAccessReports(body: Body, out: AccessOutput, maxObjectBytes: number, log: Logger): Promise<number> {
  return readingBody(body, log, async () => {
    let count = 0;
    for await (const obj of splitJsonArray(body as AsyncIterable<Uint8Array>, { maxObjectBytes })) {
      const n = out.reports.length + 1;
      out.reports.push(await out.sink.put(out.connectionUuid, n, toReportCsv(flatten(obj))));
      count++;
    }
    return count;
  });
}

/**
 * Read an identifiers response: an array of objects keyed by the identifier name. Adds each
 * value (as a string) to `into`; returns how many were found.
 */
export async function collectIdentifiers(body: Body, name: string, into: Set<string>, maxObjectBytes: number, log: Logger): Promise<number> {
  return readingBody(body, log, async () => {
    let found = 0;
    let index = 0;
    for await (const obj of splitJsonArray(body as AsyncIterable<Uint8Array>, { maxObjectBytes, label: 'identifiers response' })) {
      index++;
      const v = obj[name];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'string' && typeof v !== 'number') {
        throw new AgentError(
          ErrorCodes.RESPONSE_MALFORMED,
          `identifiers response element ${index}: "${name}" must be a string or number, got ${Array.isArray(v) ? 'an array' : typeof v}`,
        );
      }
      into.add(String(v));
      found++;
    }
    return found;
  });
}
