// A/B two builds of the agent on case 1's "one job" shape, alternating rounds in one process so
// both see the same machine noise. For trying an engine change before it goes into src/:
//   cp -r dist /tmp/exp/dist && ln -s "$PWD/schemas" /tmp/exp/schemas && ln -s "$PWD/node_modules" /tmp/exp/node_modules
//   (edit /tmp/exp/dist/…)  node bench/compare-builds.mjs --b /tmp/exp/dist [--a dist] [--queries 20000] [--rounds 5]
import { join } from 'node:path';
import { Agent } from 'undici';
import { ROOT, accessConnection, benchConfig, makeBenchEngine, makeCountingSink, parseArgs, startTarget } from './lib.mjs';

const args = parseArgs();
const N = Number(args.queries ?? 20000);
const CONNS = 50;
const builds = { a: join(ROOT, args.a ?? 'dist'), b: args.b };
if (!builds.b) throw new Error('pass --b <path of the other build (a dist folder)>');
const target = await startTarget();
const dispatcher = new Agent({ keepAliveTimeout: 60_000 });
const path = args.path ?? '/small'; // /empty: a [] body, to separate request cost from report cost
const urls = (c) => Array.from({ length: Math.ceil(N / CONNS) }, (_, k) => `${target.url}${path}?email={email}&c=${c}&q=${k}`);
const raw = benchConfig(Array.from({ length: CONNS }, (_, c) => accessConnection(c, urls(c), target.url)), { agent: { connection_concurrency: 64 } });
const engines = {};
for (const [k, dist] of Object.entries(builds)) engines[k] = await makeBenchEngine(raw, { dispatcher, dist });
const rates = { a: [], b: [] };
const cpu = { a: [], b: [] }; // client CPU µs per request (user + system): steadier than req/s
for (let r = 0; r <= Number(args.rounds ?? 5); r++) {
  for (const k of r % 2 ? ['a', 'b'] : ['b', 'a']) {
    const sink = makeCountingSink();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const result = await engines[k].engine.run({ type: 'access', identifiers: { email: 'peter@initech.example' } }, { sink });
    if (result.status !== 'succeeded') throw new Error(`${k}: job ${result.status}`);
    const c = process.cpuUsage(c0);
    if (r > 0) {
      // round 0 warms up
      rates[k].push(Math.round(N / ((performance.now() - t0) / 1000)));
      cpu[k].push(Math.round((c.user + c.system) / N));
    }
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
for (const k of ['a', 'b']) console.log(`${k} ${builds[k]}: median ${median(rates[k])} req/s (${rates[k].join(' ')}), ${median(cpu[k])} µs CPU/req (${cpu[k].join(' ')})`);
console.log(`b/a: req/s ${(median(rates.b) / median(rates.a)).toFixed(3)}, CPU/req ${(median(cpu.b) / median(cpu.a)).toFixed(3)}`);
for (const e of Object.values(engines)) await e.cleanup();
await dispatcher.close();
await target.stop();
