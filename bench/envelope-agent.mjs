// The envelope case's agent process: build the engine, run one access job that reads the target's
// ~1 KiB-record sequence of `--bytes`, discard the reports, print throughput and peak RSS.
//   --mode bare      one access query, GET /records-bare?bytes=N: one bare JSON array
//   --mode envelope  a connection token `session` (POST /login), then GET /records?bytes=N&page={page}&size={page_size}
//                    with `Authorization: Bearer {session}`, records at "/response", expect /status
//                    "success", page pagination (--page-size, default 10,000) that stops at /total
// Run by bench/envelope.mjs, or alone against `node bench/target.mjs` (which prints its port):
//   node bench/envelope-agent.mjs --target http://127.0.0.1:PORT --bytes N --mode envelope
// Prints one JSON line: bytes (response bodies, from the target's counters), records (reports
// written), seconds, mb_per_s, peak_rss_mib, pages and logins (the target's counters), and
// report_list_mib: the heap the job result's report locations hold once the job is done.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Agent } from 'undici';
import { MiB, accessConnection, benchConfig, emit, loginToken, makeBenchEngine, makeCountingSink, parseArgs, peakRssMiB, startMemorySampler } from './lib.mjs';

const args = parseArgs();
const base = args.target;
const bytes = Number(args.bytes);
const mode = args.mode ?? 'envelope';
const pageSize = Number(args['page-size'] ?? 10_000);
if (!base || !(bytes > 0) || !['bare', 'envelope'].includes(mode)) {
  console.error('usage: node bench/envelope-agent.mjs --target URL --bytes N [--mode bare|envelope] [--page-size 10000]');
  process.exit(2);
}

const connection =
  mode === 'bare'
    ? accessConnection(0, [`${base}/records-bare?bytes=${bytes}`], base)
    : accessConnection(
        0,
        [
          {
            url: `${base}/records?bytes=${bytes}&page={page}&size={page_size}`,
            headers: { Authorization: 'Bearer {session}' },
            records: '/response',
            expect: { '/status': 'success' },
            paginate: { style: 'page', start: 1, size: pageSize, total: '/total' },
          },
        ],
        base,
        { tokens: { session: loginToken(`${base}/login`) } },
      );
const dispatcher = new Agent();
const { engine, cleanup } = await makeBenchEngine(benchConfig([connection]), { dispatcher });

// The target's counters (bodies' bytes, pages, logins), read before and after the job, outside the timing.
const counters = async () => (await dispatcher.request({ origin: base, path: '/counters', method: 'GET' })).body.json();
const before = await counters();
const baseline = process.memoryUsage().rss;
const sampler = startMemorySampler();
const sink = makeCountingSink();
const t0 = performance.now();
const result = await engine.run({ type: 'access', identifiers: { email: 'peter@initech.example' } }, { sink });
const seconds = (performance.now() - t0) / 1000;
const atPeak = sampler.stop();
if (result.status !== 'succeeded') throw new Error(`${mode}: access job ${result.status}: ${JSON.stringify(result.connections[0]?.error)}`);
const after = await counters();
const delta = (k) => after[k] - before[k];

// What the job result's list of report locations (one string per report) holds on the heap: live
// heap after a full GC with the list, then without it. Measured after the timing, with a gc() made
// available only now, so the run itself is the production process.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const heapAfterGc = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const withList = heapAfterGc();
const locations = result.connections[0].reports?.length ?? 0;
result.connections[0].reports = undefined;
const reportListMiB = Number(((withList - heapAfterGc()) / MiB).toFixed(1));
const bodyBytes = mode === 'bare' ? delta('bare_bytes') : delta('records_bytes');
emit({
  mode,
  bytes: bodyBytes,
  records: sink.reports,
  seconds: Number(seconds.toFixed(2)),
  mb_per_s: Number((bodyBytes / 1e6 / seconds).toFixed(1)),
  baseline_rss_mib: Number((baseline / MiB).toFixed(1)),
  peak_rss_mib: peakRssMiB(),
  at_peak_mib: atPeak, // process.memoryUsage() and V8's spaces when RSS was highest
  pages: mode === 'bare' ? 1 : delta('pages'),
  logins: delta('logins'),
  unauthorized: delta('unauthorized'),
  report_locations: locations,
  report_list_mib: reportListMiB,
});
await cleanup();
await dispatcher.close();
