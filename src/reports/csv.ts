import { stringify } from 'csv-stringify/sync';

// quote_record_delimiter must be explicit: csv-stringify turns it off whenever record_delimiter is
// given, and a value holding a lone CR would then go out unquoted.
const OPTIONS = { record_delimiter: 'unix', quote_record_delimiter: true } as const;

/** A field csv-stringify would write unquoted and unchanged: no quote, comma, CR or LF. */
const PLAIN = /^[^",\r\n]*$/;

/**
 * Render rows as DataGrail report CSV: two columns key,value, no header, RFC 4180 quoting via
 * csv-stringify, '\n' line endings. Values are never altered: a value starting with = + - @ is
 * written as it is, because a report must be exactly the subject's data.
 *
 * Rows whose fields need no quoting are joined directly (csv-stringify would write them byte for
 * byte the same; a test checks that); only rows that need quoting go through csv-stringify. Most
 * rows are plain, and csv-stringify's per-call setup was a tenth of the access path's CPU time.
 */
export function toReportCsv(rows: Array<[string, string]>): string {
  let out = '';
  let pending: Array<[string, string]> | undefined;
  for (const row of rows) {
    if (PLAIN.test(row[0]) && PLAIN.test(row[1])) {
      if (pending) {
        out += stringify(pending, OPTIONS);
        pending = undefined;
      }
      out += `${row[0]},${row[1]}\n`;
    } else {
      (pending ??= []).push(row);
    }
  }
  if (pending) out += stringify(pending, OPTIONS);
  return out;
}
