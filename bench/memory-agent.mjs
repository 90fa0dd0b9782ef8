// Case 3's agent process: build the engine, run one access job whose only query streams `--bytes`
// from the target, discard the reports, print the process's peak RSS. Run by bench/memory.mjs, or:
//   node bench/memory-agent.mjs --target http://127.0.0.1:PORT --bytes N [--heap-profile FILE]
//   (PORT from `node bench/target.mjs`), then `node bench/profile-summary.mjs FILE`.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { getHeapSpaceStatistics } from 'node:v8';
import { Agent } from 'undici';
import { MiB, accessConnection, benchConfig, emit, makeBenchEngine, makeCountingSink, parseArgs } from './lib.mjs';

const args = parseArgs();
const bytes = Number(args.bytes);
const dispatcher = new Agent();
const url = `${args.target}/stream?bytes=${bytes}&email={email}`;
const { engine, cleanup } = await makeBenchEngine(benchConfig([accessConnection(0, [url], args.target)]), { dispatcher });
const baseline = process.memoryUsage().rss;
// Where the memory is: process.memoryUsage() and V8's space sizes, sampled every 20 ms; the
// snapshot taken when RSS was highest says which part grew.
const SPACES = ['new_space', 'old_space', 'large_object_space', 'new_large_object_space', 'code_space'];
let peak = { rss: 0 };
const sample = () => {
  const m = process.memoryUsage();
  if (m.rss < peak.rss) return;
  for (const s of getHeapSpaceStatistics()) if (SPACES.includes(s.space_name)) m[s.space_name] = s.space_size;
  peak = m;
};
const sampler = setInterval(sample, 20);
// --heap-profile FILE: sample every allocation of the job, collected or not (what --heap-prof leaves out).
let session;
if (args['heap-profile']) {
  session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 64 * 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
}
const sink = makeCountingSink();
const t0 = performance.now();
const result = await engine.run({ type: 'access', identifiers: { email: 'peter@initech.example' } }, { sink });
const seconds = (performance.now() - t0) / 1000;
clearInterval(sampler);
sample();
if (session) writeFileSync(args['heap-profile'], JSON.stringify((await session.post('HeapProfiler.stopSampling')).profile));
if (result.status !== 'succeeded') throw new Error(`access job ${result.status}: ${JSON.stringify(result.connections[0]?.error)}`);
emit({
  bytes,
  objects: sink.reports,
  seconds: Number(seconds.toFixed(2)),
  mb_per_s: Number((bytes / 1e6 / seconds).toFixed(1)),
  baseline_rss_mib: Number((baseline / MiB).toFixed(1)),
  // maxRSS is in KiB: the peak resident set of this process over its whole life.
  peak_rss_mib: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
  at_peak_mib: Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Number((v / MiB).toFixed(1))])),
});
await cleanup();
await dispatcher.close();
