// A/B two builds of the agent on case 1's "job" shape (--shape jobs: 64 single-connection jobs in
// flight), alternating rounds in one process so both see the same machine noise. For trying an
// engine change before it goes into src/:
//   cp -r dist /tmp/exp/dist && ln -s "$PWD/schemas" /tmp/exp/schemas && ln -s "$PWD/node_modules" /tmp/exp/node_modules
//   (edit /tmp/exp/dist/…)  node bench/compare-builds.mjs --b /tmp/exp/dist [--a dist] [--queries 2000] [--rounds 20] [--path /empty] [--shape jobs]
import { resolve } from 'node:path';
import { Agent } from 'undici';
import { ROOT, accessConnection, benchConfig, makeBenchEngine, makeCountingSink, parseArgs, startTarget } from './lib.mjs';

const args = parseArgs();
// Many short alternating rounds: on a shared machine noise comes in bursts of seconds, and a
// pair of adjacent rounds sees the same burst; the median of the pairs' ratios is what holds.
const N = Number(args.queries ?? 2000);
const CONNS = 50;
const builds = { a: resolve(ROOT, args.a ?? 'dist'), b: args.b && resolve(process.cwd(), args.b) };
if (!builds.b) throw new Error('pass --b <path of the other build (a dist folder)>');
const target = await startTarget();
const dispatcher = new Agent({ keepAliveTimeout: 60_000 });
const path = args.path ?? '/small'; // /empty: a [] body, to separate request cost from report cost
const shape = args.shape ?? 'job';
const urls = (c) => Array.from({ length: shape === 'job' ? Math.ceil(N / CONNS) : 1 }, (_, k) => `${target.url}${path}?email={email}&c=${c}&q=${k}`);
const raw = benchConfig(Array.from({ length: CONNS }, (_, c) => accessConnection(c, urls(c), target.url)), { agent: { connection_concurrency: 64 } });
const engines = {};
for (const [k, dist] of Object.entries(builds)) engines[k] = await makeBenchEngine(raw, { dispatcher, dist });
const names = engines.a.config.connections.map((c) => c.name);
async function runShape({ engine }, sink, k) {
  const check = (result) => {
    if (result.status !== 'succeeded') throw new Error(`${k}: job ${result.status}`);
  };
  if (shape === 'job') return check(await engine.run({ type: 'access', identifiers: { email: 'peter@initech.example' } }, { sink }));
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    for (let n = next++; n < N; n = next++) check(await engine.run({ type: 'access', identifiers: { email: `u${n}@initech.example` }, connections: [names[n % CONNS]] }, { sink }));
  }));
}
const rates = { a: [], b: [] };
const cpu = { a: [], b: [] }; // client CPU µs per request (user + system): steadier than req/s
const WARM = Number(args.warmup ?? 4); // rounds not counted: the JIT needs ~10,000 requests
for (let r = 0; r < WARM + Number(args.rounds ?? 20); r++) {
  for (const k of r % 2 ? ['a', 'b'] : ['b', 'a']) {
    const sink = makeCountingSink();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await runShape(engines[k], sink, k);
    const c = process.cpuUsage(c0);
    if (r >= WARM) {
      rates[k].push(Math.round(N / ((performance.now() - t0) / 1000)));
      cpu[k].push(Math.round((c.user + c.system) / N));
    }
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
for (const k of ['a', 'b']) console.log(`${k} ${builds[k]}: median ${median(rates[k])} req/s (${rates[k].join(' ')}), ${median(cpu[k])} µs CPU/req (${cpu[k].join(' ')})`);
const pairs = (m) => median(m.a.map((x, i) => m.b[i] / x)).toFixed(3);
console.log(`b/a, median of paired rounds: req/s ${pairs(rates)}, CPU/req ${pairs(cpu)}`);
for (const e of Object.values(engines)) await e.cleanup();
await dispatcher.close();
await target.stop();
