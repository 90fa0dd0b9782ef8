/** recordToReportCsv: the access path's one-walk report writer is byte for byte flatten + toReportCsv. */
import { describe, it, expect } from '@jest/globals';
import { recordToReportCsv, toReportCsv } from '../src/reports/csv.js';
import { MAX_RECURSION, flatten } from '../src/reports/flatten.js';

/** A small seeded PRNG (mulberry32), so a failure can be replayed. */
function makeRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Pieces that exercise quoting and encoding: quotes, commas, CR, LF, spaces, unicode, empty.
const PIECES = ['a', 'Peter', ' ', ',', '"', '\n', '\r', '\r\n', 'ü', '😀', '=SUM(A1)', '', 'x_y', '7', '\t', '\u2028'];

function text(rnd: () => number): string {
  let s = '';
  for (let i = Math.floor(rnd() * 4); i > 0; i--) s += PIECES[Math.floor(rnd() * PIECES.length)];
  return s;
}

function value(rnd: () => number, depth: number): unknown {
  const r = rnd();
  if (depth > 3 || r < 0.3) return text(rnd);
  if (r < 0.4) return Math.round(rnd() * 1e6) / 100 - 5000;
  if (r < 0.45) return rnd() < 0.5;
  if (r < 0.5) return null;
  if (r < 0.75) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(rnd, depth + 1));
  const obj: Record<string, unknown> = {};
  for (let i = Math.floor(rnd() * 4); i > 0; i--) obj[rnd() < 0.2 ? String(Math.floor(rnd() * 50)) : text(rnd)] = value(rnd, depth + 1);
  return obj;
}

describe('recordToReportCsv', () => {
  it('writes exactly what flatten + toReportCsv write, on 2,000 random records', () => {
    const rnd = makeRandom(11);
    for (let i = 0; i < 2000; i++) {
      const record: Record<string, unknown> = {};
      for (let k = Math.floor(rnd() * 6); k >= 0; k--) record[text(rnd) || `k${k}`] = value(rnd, 0);
      expect(recordToReportCsv(record)).toBe(toReportCsv(flatten(record)));
    }
  });

  it('quotes a key when any of its segments needs it, and keeps empty objects and arrays', () => {
    const record = { 'a,b': { c: 1 }, d: { 'e"f': [true, null] }, g: {}, h: [], i: [{ j: 'x\ny' }] };
    expect(recordToReportCsv(record)).toBe('"a,b_c",1\n"d_e""f_0",true\n"d_e""f_1",\ng,\nh,\ni_0_j,"x\ny"\n');
  });

  it(`writes a record nested deeper than ${MAX_RECURSION} levels as flatten does`, () => {
    let deep: unknown = 'bottom';
    for (let i = 0; i < MAX_RECURSION + 100; i++) deep = i % 2 ? [deep] : { k: deep };
    const record = { top: 1, deep, after: 'x,y' };
    expect(recordToReportCsv(record)).toBe(toReportCsv(flatten(record)));
  });
});
