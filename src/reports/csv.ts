import { stringify } from 'csv-stringify/sync';

// quote_record_delimiter must be explicit: csv-stringify turns it off whenever record_delimiter is
// given, and a value holding a lone CR would then go out unquoted.
const OPTIONS = { record_delimiter: 'unix', quote_record_delimiter: true } as const;

/**
 * Render rows as DataGrail report CSV: two columns key,value, no header, RFC 4180 quoting via
 * csv-stringify, '\n' line endings. Values are never altered: a value starting with = + - @ is
 * written as it is, because a report must be exactly the subject's data.
 */
export function toReportCsv(rows: Array<[string, string]>): string {
  return stringify(rows, OPTIONS);
}
