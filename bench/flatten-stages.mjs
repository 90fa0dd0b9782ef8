// Where case 2's time goes, stage by stage, in CPU time (steady on a shared machine): the same
// generated body through (1) decode + JSON.parse of the whole body (the baseline), (2) the streaming
// split alone (byte scan + JSON.parse per element), (3) + flatten, (4) + CSV, (5) the engine's whole
// writeAccessReports (+ the consumer and a counting sink). Each stage's cost is its difference
// from the one before, also shown as a multiple of the baseline. Median of --rounds (default 5)
// rounds, stages in rotating order. With a build that has recordToReportCsv (flatten and CSV in one
// walk, what the engine uses), (4b) split + that writer is measured too, as a step from (2).
// Usage: node --expose-gc --max-old-space-size=4096 bench/flatten-stages.mjs [--mb 200] [--rounds 5] [--dist DIR]
import { join } from 'node:path';
import { DIST, MiB, makeCountingSink, parseArgs, quantile, round } from './lib.mjs';
import { makeRecordsBody } from './records.mjs';

const args = parseArgs();
const dist = typeof args.dist === 'string' ? args.dist : DIST;
const ROUNDS = Number(args.rounds ?? 5);
const { splitJsonArray } = await import(join(dist, 'reports/json-array.js'));
const { flatten } = await import(join(dist, 'reports/flatten.js'));
const { toReportCsv, recordToReportCsv } = await import(join(dist, 'reports/csv.js'));
const { writeAccessReports } = await import(join(dist, 'engine/responses.js'));
const { body, count } = makeRecordsBody(Number(args.mb ?? 200) * 1e6);
const CHUNK = 64 * 1024;
const chunks = () => ({
  async *[Symbol.asyncIterator]() {
    for (let i = 0; i < body.length; i += CHUNK) yield body.subarray(i, i + CHUNK);
  },
  destroy() {},
});

const stages = {
  'json.parse': async () => JSON.parse(body.toString('utf8')).length,
  split: async () => {
    let n = 0;
    for await (const _ of splitJsonArray(chunks())) n++;
    return n;
  },
  'split+flatten': async () => {
    let n = 0;
    for await (const obj of splitJsonArray(chunks())) n += flatten(obj).length > 0 ? 1 : 0;
    return n;
  },
  'split+flatten+csv': async () => {
    let n = 0;
    for await (const obj of splitJsonArray(chunks())) n += toReportCsv(flatten(obj)).length > 0 ? 1 : 0;
    return n;
  },
  // The one-walk writer the engine uses (when the build has it): flatten and CSV fused.
  ...(recordToReportCsv
    ? {
        'split+recordToReportCsv': async () => {
          let n = 0;
          for await (const obj of splitJsonArray(chunks())) n += recordToReportCsv(obj).length > 0 ? 1 : 0;
          return n;
        },
      }
    : {}),
  writeAccessReports: async () => writeAccessReports(chunks(), { sink: makeCountingSink(), connectionUuid: '00000000-0000-4000-8000-000000000000', reports: [] }, 64 * MiB),
};
const names = Object.keys(stages);
const cpu = Object.fromEntries(names.map((n) => [n, []]));
const wall = Object.fromEntries(names.map((n) => [n, []]));
for (let r = 0; r < ROUNDS + 1; r++) {
  const order = names.map((_, i) => names[(i + r) % names.length]);
  for (const name of order) {
    globalThis.gc?.();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const n = await stages[name]();
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    if (n !== count) throw new Error(`${name}: ${n} objects, expected ${count}`);
    if (r > 0) {
      cpu[name].push((c.user + c.system) / 1000);
      wall[name].push(ms);
    }
  }
}
const med = (xs) => quantile([...xs], 0.5);
const base = med(cpu['json.parse']);
console.log(`${(body.length / 1e6).toFixed(0)} MB, ${count} objects, median of ${ROUNDS} rounds (CPU ms; wall ms)`);
let prev = 0;
for (const name of names) {
  const c = med(cpu[name]);
  // The fused writer replaces flatten + CSV: its step is measured from the split alone.
  if (name === 'split+recordToReportCsv') prev = med(cpu.split);
  const step = name === 'json.parse' ? c : c - prev;
  console.log(`${name.padEnd(24)} ${String(Math.round(c)).padStart(6)} CPU ms  ${String(Math.round(med(wall[name]))).padStart(6)} wall ms  ${(c / base).toFixed(2)} × JSON.parse${name === 'json.parse' ? '' : `  (this stage: +${Math.round(step)} ms, ${(step / base).toFixed(2)} ×)`}`);
  if (name !== 'json.parse') prev = c;
}
console.log(JSON.stringify({ mb: round(body.length / 1e6, 1), objects: count, cpu_ms: Object.fromEntries(names.map((n) => [n, Math.round(med(cpu[n]))])), wall_ms: Object.fromEntries(names.map((n) => [n, Math.round(med(wall[n]))])) }));
