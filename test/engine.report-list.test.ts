/** A connection's report list: bounded by REPORT_LIST_CAP, and every report still named. */
import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { REPORT_LIST_CAP, ReportList } from '../src/engine/report-list.js';

const at = (folder: string, n: number) => `${folder}/report_${n}.csv`;

describe('ReportList', () => {
  it('names every report when a location stops following the folder past the cap', () => {
    const list = new ReportList();
    const folder = 's3://bucket/p/job/uuid';
    for (let n = 1; n <= REPORT_LIST_CAP + 10; n++) list.push(at(folder, n));
    list.push('elsewhere://report');
    const s = list.summary();
    expect(s.report_count).toBe(REPORT_LIST_CAP + 11);
    // The locations left out while they followed the folder are listed again, so none is lost.
    expect(s.reports).toEqual([...Array.from({ length: REPORT_LIST_CAP + 10 }, (_, i) => at(folder, i + 1)), 'elsewhere://report']);
    expect(s).not.toHaveProperty('report_location');
    expect(s).not.toHaveProperty('reports_truncated');
  });

  it('a summary is a copy: later reports do not change it', () => {
    const list = new ReportList();
    list.push(at('/r/u', 1));
    const s = list.summary();
    list.push(at('/r/u', 2));
    expect(s).toEqual({ reports: [at('/r/u', 1)], report_count: 1, report_location: '/r/u' });
  });
});

describe('the job API schema', () => {
  it('states the cap the engine applies', () => {
    const schema = JSON.parse(readFileSync(new URL('../schemas/api/connection-result.schema.json', import.meta.url), 'utf8'));
    for (const field of ['reports', 'reports_truncated']) expect(schema.properties[field].description).toContain(`first ${REPORT_LIST_CAP}`);
  });
});
