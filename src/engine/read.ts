/**
 * Reading one response, once, as a stream: records (to a consumer), the values the pager, the
 * token and `expect` need, and GraphQL's `errors`; then the body checks. What a target says only
 * reaches an error or a log line masked.
 */
import type { HttpResponse, ResponseBody } from './exchange.js';
import { AgentError, ErrorCodes, errorCodeOf, isAgentError } from '../errors.js';
import { ABSENT } from '../json-pointer.js';
import type { Logger } from '../logger.js';
import { readJsonBody } from '../reports/json-body.js';
import { ArrayScanner } from '../reports/array-scanner.js';
import type { CompiledQuery, Pointer } from './compile.js';
import type { Mask } from './mask.js';

type Body = ResponseBody;

/** Receives each record of an access or identifiers response; awaited (a slow sink slows reading). */
export type RecordConsumer = (record: Record<string, unknown>) => void | Promise<void>;

/** How to read one response. */
export interface ReadOptions {
  /** Where records go; undefined for test, delete, optout queries and token requests. */
  readonly consume?: RecordConsumer;
  /** Pointers read for the caller (pager, token), before the query's own. */
  readonly captures: readonly Pointer[];
  /** What the body is, for messages: "access response". */
  readonly label: string;
  readonly maxObjectBytes: number;
  readonly log: Logger;
  /** Masks the request's identifier, secret and token values in anything the target said. */
  readonly mask: () => Mask;
}

/** What a response held. */
export interface ResponseRead {
  readonly records: number;
  readonly noData: boolean;
  /** The values at `captures` (ABSENT when not there). */
  readonly values: readonly unknown[];
}

const NONE: readonly unknown[] = Object.freeze([]);

/**
 * A valid status that carries no data: 204, or a non-2xx the config lists as valid (DataGrail's advice
 * is to add 404 to valid_response_codes when the subject does not exist). Its body is not parsed.
 */
export function isNoData(status: number): boolean {
  return status === 204 || status < 200 || status >= 300;
}

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

/** Extra bytes read past a preview's end, so a value crossing the cut is masked whole before the cut. */
const PREVIEW_LOOKAHEAD = 16 * 1024;

/** A body nobody reads: logged (masked) at DEBUG, else discarded. */
async function discard(body: Body, o: ReadOptions): Promise<void> {
  if (o.log.isLevelEnabled('debug')) {
    const text = await readPreview(body, 2048 + PREVIEW_LOOKAHEAD);
    o.log.debug({ body: o.mask()(text).slice(0, 2048) }, 'response body (first 2 KiB)');
  } else await body.dump();
}

/**
 * Read a response with a valid status: records to `consume`, captured values, then the checks
 * (GraphQL errors, then `expect`). A no-data status is not parsed. On a malformed body the masked
 * preview is logged at DEBUG and the socket released.
 */
export function readResponse(res: HttpResponse, q: CompiledQuery, o: ReadOptions): Promise<ResponseRead> {
  // One async frame per response: the reader of its kind is called directly.
  if (isNoData(res.statusCode)) return readNoData(res.body, o);
  // DataGrail's contract: the body is a bare array (no pointers to read: the config refuses them without records).
  if (o.consume && !q.records) return readBareArray(res.body, q, o, o.consume);
  return readDocument(res.body, q, o);
}

async function readNoData(body: Body, o: ReadOptions): Promise<ResponseRead> {
  await discard(body, o);
  return { records: 0, noData: true, values: o.captures.length === 0 ? NONE : o.captures.map(() => ABSENT) };
}

/**
 * Each element of a bare JSON array body to `consume`, as it arrives (what splitJsonArray does,
 * without async generators, pulling the body's chunks).
 */
async function readBareArray(body: Body, q: CompiledQuery, o: ReadOptions, consume: RecordConsumer): Promise<ResponseRead> {
  let records = 0;
  try {
    const scanner = new ArrayScanner(o.maxObjectBytes, true, o.label);
    let total = 0;
    for (;;) {
      const buf = body.read();
      if (buf === null) {
        if (await body.wait()) continue;
        break;
      }
      if (buf.length === 0) continue;
      scanner.record(buf);
      scanner.base = total;
      total += buf.length;
      for (let pos = 0, end = scanner.scan(buf, 0); end >= 0; pos = end, end = scanner.scan(buf, pos)) {
        const pending = consume(scanner.take(buf, end) as Record<string, unknown>);
        if (pending !== undefined) await pending;
        records++;
      }
    }
    scanner.end(total);
  } catch (caught) {
    throw readFailure(caught, body, q, o);
  }
  if (q.captures.length > 0) assertExpected([], q, o);
  return { records, noData: false, values: o.captures.length === 0 ? NONE : [] };
}

/** A JSON document: records at their pointer (an envelope) and the captured values, read in one pass. */
async function readDocument(body: Body, q: CompiledQuery, o: ReadOptions): Promise<ResponseRead> {
  const captures = o.captures.length === 0 ? q.captures : [...o.captures, ...q.captures];
  let records = 0;
  let values: unknown[] = [];
  try {
    if (o.consume || captures.length > 0) {
      const result = await readJsonBody(
        body as AsyncIterable<Uint8Array>,
        {
          records: o.consume ? q.records!.tokens : undefined,
          recordsText: q.records?.text,
          capture: captures.map((c) => c.tokens),
          maxObjectBytes: o.maxObjectBytes,
          label: o.label,
        },
        o.consume ?? (() => undefined),
      );
      records = result.count;
      values = result.values;
    } else {
      await discard(body, o);
    }
  } catch (caught) {
    throw readFailure(caught, body, q, o);
  }
  assertExpected(o.captures.length === 0 ? values : values.slice(o.captures.length), q, o);
  return { records, noData: false, values: o.captures.length === 0 ? NONE : values.slice(0, o.captures.length) };
}

/**
 * What a failed read throws, after releasing the socket: a broken connection is HTTP_NETWORK by its
 * code; a malformed body's masked preview is logged at DEBUG; a GraphQL response's `errors` are the
 * real cause when it had them.
 */
function readFailure(caught: unknown, body: Body, q: CompiledQuery, o: ReadOptions): unknown {
  // The socket broke mid-body (reset, closed early): a network error by its code, not an unexpected one.
  const code = isAgentError(caught) ? undefined : errorCodeOf(caught);
  const err =
    code !== undefined
      ? new AgentError(ErrorCodes.HTTP_NETWORK, `the connection broke while the response was read (${code}); the target or a proxy closed it`, { cause: caught })
      : caught;
  const preview = (err as { bodyPreview?: string } | undefined)?.bodyPreview;
  if (preview !== undefined) o.log.debug({ body: o.mask()(preview) }, 'malformed response body (first 2 KiB)');
  body.destroy();
  // GraphQL answers a failed query with `errors` and no `data`: those errors are the real cause.
  const captured = (err as { captured?: unknown[] } | undefined)?.captured;
  if (q.graphql && captured) assertNoGraphQLErrors(captured[captured.length - 1], o.mask());
  return err;
}

/** The query's own checks on the values read at its captures (`mine`): GraphQL errors, then `expect`. */
function assertExpected(mine: readonly unknown[], q: CompiledQuery, o: ReadOptions): void {
  if (q.graphql) assertNoGraphQLErrors(mine[mine.length - 1], o.mask());
  q.expect.forEach((e, i) => {
    if (!jsonEqual(mine[i], e.value)) {
      if (o.log.isLevelEnabled('debug')) {
        const actual = mine[i] === ABSENT ? '(absent)' : o.mask()(JSON.stringify(mine[i]) ?? 'undefined').slice(0, 512);
        o.log.debug({ pointer: e.at.text, actual }, 'unexpected value in response');
      }
      throw new AgentError(
        ErrorCodes.RESPONSE_UNEXPECTED,
        `the response does not hold ${JSON.stringify(e.value)} at "${e.at.text}" (expect)${mine[i] === ABSENT ? ': nothing is there' : ''}; ` +
          'the target did not confirm the request (LOGLEVEL=DEBUG logs the value found)',
      );
    }
  });
}

/** GRAPHQL_ERRORS when `errors` is a non-empty array: each message and path, masked. */
function assertNoGraphQLErrors(errors: unknown, mask: Mask): void {
  if (!Array.isArray(errors) || errors.length === 0) return;
  const shown = errors.slice(0, 5).map((e) => {
    // Masked whole, then shortened: a cut through a value would leave a piece the mask cannot match.
    const message = typeof e?.message === 'string' ? cut(mask(e.message), 300) : 'no message';
    const path = Array.isArray(e?.path) ? ` at ${cut(mask(e.path.map(String).join('.')), 200)}` : '';
    return `"${message}"${path}`;
  });
  const more = errors.length > 5 ? `; and ${errors.length - 5} more` : '';
  throw new AgentError(
    ErrorCodes.GRAPHQL_ERRORS,
    `the GraphQL response has ${errors.length} error${errors.length === 1 ? '' : 's'}: ${shown.join('; ')}${more}`,
  );
}

/** `text` shortened to `max` characters (a cut marked with …). */
const cut = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** JSON equality: same type and value, objects compared member by member whatever their order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => jsonEqual(x, bb[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
