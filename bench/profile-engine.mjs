// Profile the agent side of case 1 alone, after a warm-up round (compiling 20,000 distinct query
// templates is a one-off cost a real config never repeats):
//   node bench/profile-engine.mjs --queries 20000 --rounds 3 --out bench/results/engine.cpuprofile
//   node bench/profile-summary.mjs bench/results/engine.cpuprofile
// Runs the "one job" shape (50 connections × N/50 access queries), no raw side.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Agent } from 'undici';
import { accessConnection, benchConfig, makeBenchEngine, makeCountingSink, parseArgs, startTarget } from './lib.mjs';

const args = parseArgs();
const N = Number(args.queries ?? 20000);
const CONNS = 50;
const out = args.out ?? 'bench/results/engine.cpuprofile';
const target = await startTarget();
const dispatcher = new Agent({ keepAliveTimeout: 60_000 });
const path = args.path ?? '/small'; // /empty: a [] body, to see the request path without reports
const urls = (c) => Array.from({ length: Math.ceil(N / CONNS) }, (_, k) => `${target.url}${path}?email={email}&c=${c}&q=${k}`);
const { engine, cleanup } = await makeBenchEngine(
  benchConfig(Array.from({ length: CONNS }, (_, c) => accessConnection(c, urls(c), target.url)), { agent: { connection_concurrency: 64 } }),
  { dispatcher },
);
const session = new Session();
session.connect();
for (let r = 0; r <= Number(args.rounds ?? 3); r++) {
  if (r === 1) {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const sink = makeCountingSink();
  const t0 = performance.now();
  const result = await engine.run({ type: 'access', identifiers: { email: 'peter@initech.example' } }, { sink });
  console.log(`${r === 0 ? 'warm-up ' : ''}${result.status}: ${Math.round(N / ((performance.now() - t0) / 1000))} req/s, ${sink.reports} reports`);
}
const { profile } = await session.post('Profiler.stop');
writeFileSync(out, JSON.stringify(profile));
console.log(`profile written to ${out}`);
await cleanup();
await dispatcher.close();
await target.stop();
