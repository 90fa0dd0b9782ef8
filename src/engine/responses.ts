/**
 * What each query type does with the records of a response: access writes one report per record,
 * identifiers collects the values of one field.
 */
import type { Dispatcher } from 'undici';
import { AgentError, ErrorCodes } from '../errors.js';
import { splitJsonArray } from '../reports/json-array.js';
import { recordToReportCsv } from '../reports/csv.js';
import type { ReportSink } from '../storage/sink.js';
import type { RecordConsumer } from './read.js';

/** Where an access query's reports go and how they are numbered across the connection's queries. */
export interface AccessOutput {
  readonly sink: ReportSink;
  readonly connectionUuid: string;
  /**
   * Locations written so far, in order; report numbers continue across pages and queries. A
   * ReportList (src/engine/report-list.ts) keeps them in bounded memory; a plain array also works.
   */
  readonly reports: { readonly length: number; push(location: string): unknown };
}

/** Each record becomes one report, written as soon as it is complete. */
export function accessConsumer(out: AccessOutput): RecordConsumer {
  return async (record) => {
    const n = out.reports.length + 1;
    out.reports.push(await out.sink.put(out.connectionUuid, n, recordToReportCsv(record)));
  };
}

/** Each record's `name` field (a string or number) is added to `into`; null or missing is skipped. */
export function identifierConsumer(name: string, into: Set<string>): RecordConsumer {
  let index = 0;
  return (record) => {
    index++;
    const v = record[name];
    if (v === undefined || v === null) return;
    if (typeof v !== 'string' && typeof v !== 'number') {
      throw new AgentError(
        ErrorCodes.RESPONSE_MALFORMED,
        `identifiers response record ${index}: "${name}" must be a string or number, got ${Array.isArray(v) ? 'an array' : typeof v}`,
      );
    }
    into.add(String(v));
  };
}

/**
 * Stream a bare-array access body into reports (the benchmarks' entry to the access path).
 * Memory is bounded by the largest object.
 */
export async function writeAccessReports(body: Dispatcher.ResponseData['body'], out: AccessOutput, maxObjectBytes: number): Promise<number> {
  const consume = accessConsumer(out);
  let count = 0;
  for await (const obj of splitJsonArray(body as AsyncIterable<Uint8Array>, { maxObjectBytes })) {
    await consume(obj);
    count++;
  }
  return count;
}
