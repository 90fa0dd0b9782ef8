import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { toReportCsv } from '../src/reports/csv.js';
import { flatten } from '../src/reports/flatten.js';
import { splitJsonArray } from '../src/reports/json-array.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));

/** Reports for an access body, the way the engine builds them: split, flatten, CSV. */
async function reportsFor(body: Buffer, chunkSize = body.length): Promise<string[]> {
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < body.length; i += chunkSize) yield body.subarray(i, i + chunkSize);
  }
  const out: string[] = [];
  for await (const obj of splitJsonArray(chunks())) out.push(toReportCsv(flatten(obj)));
  return out;
}

describe('toReportCsv', () => {
  it('turns the seed\'s Example Access Response Body into exactly report_1 and report_2', async () => {
    const reports = await reportsFor(fixture('seed-access-response.json'));
    expect(reports).toEqual([
      'first_name,Peter\nlast_name,Gibbons\ncompany,Initech\nfriends_0,Samir\nfriends_1,Michael\n',
      'address_type,Home\naddress_street,191 N. Lamar\naddress_city,Flander\naddress_state,Illinois\naddress_zip_code,77070\n',
    ]);
    expect(await reportsFor(fixture('seed-access-response.json'), 7)).toEqual(reports);
  });

  it('matches the seed\'s report_1.csv and report_2.csv once their ", " separator is normalised to ","', async () => {
    const normalise = (csv: string) => csv.replace(/^([^,\n]*), /gm, '$1,');
    const reports = await reportsFor(fixture('seed-access-response.json'));
    const expected = [fixture('seed-report_1.csv').toString('utf8'), fixture('seed-report_2.csv').toString('utf8')];
    expect(expected[0]).toContain('first_name, Peter\n');
    expect(reports).toEqual(expected.map(normalise));
  });

  it('writes two columns, no header, "\\n" line endings, and an empty cell for an empty value', () => {
    expect(toReportCsv([['a', '1'], ['b', ''], ['', 'c']])).toBe('a,1\nb,\n,c\n');
    expect(toReportCsv([])).toBe('');
  });

  it('quotes per RFC 4180 only where needed', () => {
    expect(toReportCsv([['k', 'a,b'], ['q', 'say "hi"'], ['n', 'x\ny'], ['r', 'x\ry'], ['plain', ' spaced ']])).toBe(
      'k,"a,b"\nq,"say ""hi"""\nn,"x\ny"\nr,"x\ry"\nplain, spaced \n',
    );
  });

  it('leaves formula-like values exactly as they are (a report is the data, unaltered)', () => {
    expect(toReportCsv([['f', '=cmd()'], ['p', '+1'], ['m', '-1'], ['at', '@SUM(A1)']])).toBe('f,=cmd()\np,+1\nm,-1\nat,@SUM(A1)\n');
  });

  it('round-trips tricky keys and values through csv-parse exactly', () => {
    const values = [
      'a,b', 'say "hi"', '"', '""', ',', 'line1\nline2', 'cr\rhere', 'crlf\r\nend', '\n', '\r', 'ü東京', '😀 emoji 👩‍👩‍👧',
      '  leading', 'trailing  ', ' ', '\t tab', '=cmd()', '+1', '-1', '@x', "'quote", '', 'back\\slash', '\u0000nul', '#hash',
    ];
    const rows: Array<[string, string]> = values.map((v, i) => [`key_${i}${i % 3 === 0 ? v : ''}`, v]);
    const csv = toReportCsv(rows);
    expect(parse(csv, { relax_quotes: false })).toEqual(rows);
    expect(csv.endsWith('\n')).toBe(true);
  });

  it('round-trips a flattened object with unicode keys and nested arrays', () => {
    const obj = { 'naïve, "key"': { 'line\nbreak': ['😀', null, 1.5, true] } };
    const rows = flatten(obj);
    expect(parse(toReportCsv(rows))).toEqual([
      ['naïve, "key"_line\nbreak_0', '😀'],
      ['naïve, "key"_line\nbreak_1', ''],
      ['naïve, "key"_line\nbreak_2', '1.5'],
      ['naïve, "key"_line\nbreak_3', 'true'],
    ]);
  });
});

describe('toReportCsv fast path', () => {
  it('writes exactly what csv-stringify writes, for plain and quoted fields mixed', async () => {
    const { stringify } = await import('csv-stringify/sync');
    const alphabet = ['a', 'Z', ' ', ',', '"', '\n', '\r', 'é', '😀', '=', '-', '\t', '\\', "'", ';', ''];
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const field = () => Array.from({ length: rnd(6) }, () => alphabet[rnd(alphabet.length)]).join('');
    for (let i = 0; i < 500; i++) {
      const rows = Array.from({ length: 1 + rnd(8) }, () => [field(), field()] as [string, string]);
      expect(toReportCsv(rows)).toBe(stringify(rows, { record_delimiter: 'unix', quote_record_delimiter: true }));
    }
  });
});
