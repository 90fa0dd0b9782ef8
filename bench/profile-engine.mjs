// Profile the agent side of case 1 alone: `node --cpu-prof --cpu-prof-dir=bench/results bench/profile-engine.mjs`.
// Runs the "one job" shape (50 connections × N/50 access queries) `--rounds` times, no raw side.
import { Agent } from 'undici';
import { accessConnection, benchConfig, makeBenchEngine, makeCountingSink, parseArgs, startTarget } from './lib.mjs';

const args = parseArgs();
const N = Number(args.queries ?? 20000);
const CONNS = 50;
const target = await startTarget();
const dispatcher = new Agent({ keepAliveTimeout: 60_000 });
const urls = (c) => Array.from({ length: Math.ceil(N / CONNS) }, (_, k) => `${target.url}/small?email={email}&c=${c}&q=${k}`);
const { engine, cleanup } = await makeBenchEngine(
  benchConfig(Array.from({ length: CONNS }, (_, c) => accessConnection(c, urls(c), target.url)), { agent: { connection_concurrency: 64 } }),
  { dispatcher },
);
for (let r = 0; r < Number(args.rounds ?? 3); r++) {
  const sink = makeCountingSink();
  const t0 = performance.now();
  const result = await engine.run({ type: 'access', identifiers: { email: 'peter@initech.example' } }, { sink });
  console.log(`${result.status}: ${Math.round(N / ((performance.now() - t0) / 1000))} req/s, ${sink.reports} reports`);
}
await cleanup();
await dispatcher.close();
await target.stop();
