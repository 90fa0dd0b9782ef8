// Case 3's agent process: build the engine, run one access job whose only query streams `--bytes`
// from the target, discard the reports, print the process's peak RSS. Run by bench/memory.mjs, or:
//   node bench/memory-agent.mjs --target http://127.0.0.1:PORT --bytes N [--heap-profile FILE]
//   (PORT from `node bench/target.mjs`), then `node bench/profile-summary.mjs FILE`.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Agent } from 'undici';
import { MiB, accessConnection, benchConfig, emit, makeBenchEngine, makeCountingSink, parseArgs, peakRssMiB, startMemorySampler } from './lib.mjs';

const args = parseArgs();
const bytes = Number(args.bytes);
const dispatcher = new Agent();
const url = `${args.target}/stream?bytes=${bytes}&email={email}`;
const { engine, cleanup } = await makeBenchEngine(benchConfig([accessConnection(0, [url], args.target)]), { dispatcher });
const baseline = process.memoryUsage().rss;
const sampler = startMemorySampler();
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
const atPeak = sampler.stop();
if (session) writeFileSync(args['heap-profile'], JSON.stringify((await session.post('HeapProfiler.stopSampling')).profile));
if (result.status !== 'succeeded') throw new Error(`access job ${result.status}: ${JSON.stringify(result.connections[0]?.error)}`);
emit({
  bytes,
  objects: sink.reports,
  seconds: Number(seconds.toFixed(2)),
  mb_per_s: Number((bytes / 1e6 / seconds).toFixed(1)),
  baseline_rss_mib: Number((baseline / MiB).toFixed(1)),
  peak_rss_mib: peakRssMiB(),
  at_peak_mib: atPeak, // process.memoryUsage() and V8's spaces when RSS was highest
});
await cleanup();
await dispatcher.close();
