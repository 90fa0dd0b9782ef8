import { describe, it, expect } from '@jest/globals';
import { splitJsonArray } from '../src/reports/json-array.js';
import { flatten } from '../src/reports/flatten.js';
import { toReportCsv } from '../src/reports/csv.js';

const MB = 1024 * 1024;

describe('access report pipeline memory', () => {
  it('streams a ~300 MB body through splitJsonArray, flatten and toReportCsv with RSS growth under 150 MB', async () => {
    const object = (i: number) =>
      JSON.stringify({ id: i, name: 'Peter Gibbons', notes: `${'ü'.repeat(1500)} "TPS" \\ ${i}`, friends: ['Samir', 'Michael'], address: { street: '191 N. Lamar' } });
    // One block of objects, yielded again and again in 64 KiB slices that cut objects (and ü) apart;
    // the body is never held as a whole.
    const perBlock = 256;
    const block = Buffer.from(Array.from({ length: perBlock }, (_, i) => object(i)).join(',') + ',');
    const repeats = Math.ceil((300 * MB) / block.length);
    let bodyBytes = 0;
    async function* body(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('[');
      for (let r = 0; r < repeats; r++) {
        for (let o = 0; o < block.length; o += 65536) {
          const chunk = block.subarray(o, o + 65536);
          bodyBytes += chunk.length;
          yield chunk;
        }
      }
      yield Buffer.from('{"id":"last"}]');
    }

    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    let count = 0;
    let csvBytes = 0;
    let last: Record<string, unknown> | undefined;
    for await (const obj of splitJsonArray(body())) {
      csvBytes += toReportCsv(flatten(obj)).length;
      last = obj;
      if (++count % 500 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    peak = Math.max(peak, process.memoryUsage().rss);

    expect(bodyBytes).toBeGreaterThan(300 * MB);
    expect(count).toBe(repeats * perBlock + 1);
    expect(last).toEqual({ id: 'last' });
    expect(csvBytes).toBeGreaterThan(repeats * perBlock * 1500);
    expect((peak - baseline) / MB).toBeLessThan(150);
  }, 60_000);
});
