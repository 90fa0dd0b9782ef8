// Case 3's engine alone, for looking closer (bench/memory.mjs measures the CLI itself): build the
// engine as the CLI does, run one access job whose only query streams `--bytes` of
// `--object-bytes`-sized objects from the memory target, and print MB/s, peak RSS and where the
// memory was when RSS peaked. Run against `node bench/memory-target.mjs` (it prints its port):
//   node bench/memory-agent.mjs --target http://127.0.0.1:PORT --bytes N [--object-bytes 1000]
//     [--out DIR]               reports to Local files under DIR, as the CLI writes them (default:
//                               the counting sink: CSV produced, then dropped)
//     [--heap-profile FILE]     sample every allocation of the job, collected or not (what --heap-prof
//                               leaves out); summarise with `node bench/profile-summary.mjs FILE`
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { Agent } from 'undici';
import { DIST, MiB, accessConnection, benchConfig, emit, makeBenchEngine, makeCountingSink, parseArgs, peakRssMiB, startMemorySampler } from './lib.mjs';

const args = parseArgs();
const bytes = Number(args.bytes);
const objectBytes = Number(args['object-bytes'] ?? 1000);
const dispatcher = new Agent();
const url = `${args.target}/objects?bytes=${bytes}&object_bytes=${objectBytes}&email={email}`;
const { engine, cleanup } = await makeBenchEngine(benchConfig([accessConnection(0, [url], args.target)], { job_timeout_seconds: 3600 }), { dispatcher });
const { makeLocalSink } = await import(join(DIST, 'storage/local.js'));
const baseline = process.memoryUsage().rss;
const sampler = startMemorySampler();
let session;
if (args['heap-profile']) {
  session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 64 * 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
}
const sink = typeof args.out === 'string' ? makeLocalSink(args.out) : makeCountingSink();
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const result = await engine.run({ type: 'access', identifiers: { email: 'peter@initech.example' } }, { sink });
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const atPeak = sampler.stop();
if (session) writeFileSync(args['heap-profile'], JSON.stringify((await session.post('HeapProfiler.stopSampling')).profile));
const c = result.connections[0];
if (result.status !== 'succeeded') throw new Error(`access job ${result.status}: ${JSON.stringify(c?.error)}`);
emit({
  bytes,
  object_bytes: objectBytes,
  objects: c.report_count ?? c.reports?.length,
  sink: typeof args.out === 'string' ? 'local' : 'counting',
  seconds: Number(seconds.toFixed(2)),
  mb_per_s: Number((bytes / 1e6 / seconds).toFixed(1)),
  cpu_s: Number(((cpu.user + cpu.system) / 1e6).toFixed(2)),
  baseline_rss_mib: Number((baseline / MiB).toFixed(1)),
  peak_rss_mib: peakRssMiB(),
  at_peak_mib: atPeak, // process.memoryUsage() and V8's spaces when RSS was highest
});
await cleanup();
await dispatcher.close();
