// Profile the agent side of case 1 alone, after warm-up rounds (compiling many distinct query
// templates and the JIT are one-off costs):
//   node bench/profile-engine.mjs [--shape job|jobs] [--path /small|/empty] [--queries 20000] [--rounds 3] [--out bench/results/engine.cpuprofile]
//   node bench/profile-summary.mjs bench/results/engine.cpuprofile
// shape job: one access job over 50 connections × N/50 queries; jobs: N single-connection jobs, 64 at once.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Agent } from 'undici';
import { accessConnection, benchConfig, makeBenchEngine, makeCountingSink, parseArgs, startTarget } from './lib.mjs';

const args = parseArgs();
const N = Number(args.queries ?? 20000);
const CONNS = 50;
const shape = args.shape ?? 'job';
const path = args.path ?? '/small';
const out = args.out ?? 'bench/results/engine.cpuprofile';
const target = await startTarget();
const dispatcher = new Agent({ keepAliveTimeout: 60_000 });
const perConn = shape === 'job' ? Math.ceil(N / CONNS) : 1;
const urls = (c) => Array.from({ length: perConn }, (_, k) => `${target.url}${path}?email={email}&c=${c}&q=${k}`);
const { engine, config, cleanup } = await makeBenchEngine(
  benchConfig(Array.from({ length: CONNS }, (_, c) => accessConnection(c, urls(c), target.url)), { agent: { connection_concurrency: 64 } }),
  { dispatcher },
);
const names = config.connections.map((c) => c.name);
const runOnce = async (sink) => {
  if (shape === 'job') return void (await engine.run({ type: 'access', identifiers: { email: 'peter@initech.example' } }, { sink }));
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    for (let n = next++; n < N; n = next++) await engine.run({ type: 'access', identifiers: { email: `u${n}@initech.example` }, connections: [names[n % CONNS]] }, { sink });
  }));
};
const WARM = Number(args.warmup ?? 2);
const session = new Session();
session.connect();
for (let r = 0; r < WARM + Number(args.rounds ?? 3); r++) {
  if (r === WARM) {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const sink = makeCountingSink();
  const t0 = performance.now();
  await runOnce(sink);
  console.log(`${r < WARM ? 'warm-up ' : ''}${Math.round(N / ((performance.now() - t0) / 1000))} req/s, ${sink.reports} reports`);
}
const { profile } = await session.post('Profiler.stop');
writeFileSync(out, JSON.stringify(profile));
console.log(`profile written to ${out}`);
await cleanup();
await dispatcher.close();
await target.stop();
