// CPU profile of case 2's agent path (writeAccessReports over one generated body, 64 KiB chunks, a
// counting sink) after a warm-up pass; writes bench/results/flatten.cpuprofile (or --out FILE).
// Summarise with: node bench/profile-summary.mjs bench/results/flatten.cpuprofile
// Usage: node --expose-gc bench/profile-flatten.mjs [--mb 40] [--out FILE] [--dist DIR]
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH, DIST, MiB, makeCountingSink, parseArgs } from './lib.mjs';
import { makeRecordsBody } from './records.mjs';

const args = parseArgs();
const dist = typeof args.dist === 'string' ? args.dist : DIST;
const { writeAccessReports } = await import(join(dist, 'engine/responses.js'));
const { body } = makeRecordsBody(Number(args.mb ?? 40) * 1e6);
const CHUNK = 64 * 1024;
const asResponseBody = (buf) => ({
  async *[Symbol.asyncIterator]() {
    for (let i = 0; i < buf.length; i += CHUNK) yield buf.subarray(i, i + CHUNK);
  },
  destroy() {},
});
const run = () => writeAccessReports(asResponseBody(body), { sink: makeCountingSink(), connectionUuid: '00000000-0000-4000-8000-000000000000', reports: [] }, 64 * MiB);

await run(); // warm-up: the profile shows the optimised code
globalThis.gc?.();
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 200 });
await session.post('Profiler.start');
const t0 = performance.now();
await run();
const ms = performance.now() - t0;
const { profile } = await session.post('Profiler.stop');
const out = typeof args.out === 'string' ? args.out : join(BENCH, 'results', 'flatten.cpuprofile');
writeFileSync(out, JSON.stringify(profile));
console.error(`${(body.length / 1e6 / (ms / 1000)).toFixed(1)} MB/s; profile in ${out}`);
