// Case 1, engine throughput: the agent's engine against raw undici, same target, same requests,
// same number in flight, alternating rounds in one process. Prints one JSON line.
//
// A. "one job": one access job over 50 connections holding N/50 access queries each. A connection
//    runs its queries in order, so in flight = min(connections, connection_concurrency) = 50 even
//    with connection_concurrency 64; raw undici runs 50 workers of N/50 sequential requests.
// B. "jobs": N single-connection access jobs (one query each), 64 jobs in flight, against raw
//    undici with 64 workers: the same 64 in flight, and every request pays the per-job setup.
// C. "idle": one request in flight (agent: one-connection jobs), the latency added with no queueing.
import { Agent, request } from 'undici';
import { accessConnection, benchConfig, emit, makeBenchEngine, makeCountingSink, parseArgs, quantile, round, startTarget } from './lib.mjs';

const args = parseArgs();
const N = Number(args.queries ?? (args.quick ? 4000 : 20000));
const CONNS = Number(args.connections ?? 50);
const CONCURRENCY = Number(args.concurrency ?? 64);
const ROUNDS = Number(args.rounds ?? (args.quick ? 1 : 3));
const IDLE = Number(args.idle ?? (args.quick ? 500 : 2000));
const PER_CONN = Math.ceil(N / CONNS);

const target = await startTarget();
const headers = { Authorization: 'Bearer bench-api-key', 'Content-Type': 'application/json' };
const queryUrl = (c, k, email) => `${target.url}/small?email=${encodeURIComponent(email)}&c=${c}&q=${k}`;

const dispatcherOptions = { keepAliveTimeout: 60_000 };
const rawDispatcher = new Agent(dispatcherOptions);
const agentDispatcher = new Agent(dispatcherOptions);

async function rawOnce(url, lat) {
  const t0 = performance.now();
  const res = await request(url, { method: 'GET', headers, dispatcher: rawDispatcher });
  if (res.statusCode !== 200) throw new Error(`target answered ${res.statusCode}`);
  await res.body.text();
  lat?.push(performance.now() - t0);
}

/** Raw A: CONNS workers, PER_CONN sequential requests each. */
async function rawJob(lat) {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONNS }, async (_, c) => {
    for (let k = 0; k < PER_CONN; k++) await rawOnce(queryUrl(c, k, 'peter@initech.example'), lat);
  }));
  return (CONNS * PER_CONN) / ((performance.now() - t0) / 1000);
}

/** Raw B/C: `workers` workers pulling from N requests. */
async function rawPool(total, workers, lat) {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: workers }, async () => {
    for (let n = next++; n < total; n = next++) await rawOnce(queryUrl(n % CONNS, 0, `user${n}@initech.example`), lat);
  }));
  return total / ((performance.now() - t0) / 1000);
}

// The engine for A: 50 connections × N/50 access queries; concurrency 64 as the issue asks.
const urlsFor = (c, count) => Array.from({ length: count }, (_, k) => `${target.url}/small?email={email}&c=${c}&q=${k}`);
let settled = null; // latency sink for querySettled
const hooks = { querySettled: (e) => settled?.push(e.durationMs) };
const one = await makeBenchEngine(
  benchConfig(Array.from({ length: CONNS }, (_, c) => accessConnection(c, urlsFor(c, PER_CONN), target.url)), { agent: { connection_concurrency: CONCURRENCY } }),
  { dispatcher: agentDispatcher, hooks },
);
const many = await makeBenchEngine(
  benchConfig(Array.from({ length: CONNS }, (_, c) => accessConnection(c, urlsFor(c, 1), target.url)), { agent: { connection_concurrency: CONCURRENCY } }),
  { dispatcher: agentDispatcher, hooks },
);
const names = many.config.connections.map((c) => c.name);

function check(result, sink, expectReports) {
  if (result.status !== 'succeeded') throw new Error(`agent job ${result.status}: ${JSON.stringify(result.connections.find((c) => c.error)?.error)}`);
  if (expectReports !== undefined && sink.reports !== expectReports) throw new Error(`expected ${expectReports} reports, sink got ${sink.reports}`);
}

async function agentJob(lat) {
  const sink = makeCountingSink();
  settled = lat;
  const t0 = performance.now();
  const result = await one.engine.run({ type: 'access', identifiers: { email: 'peter@initech.example' } }, { sink });
  const rps = (CONNS * PER_CONN) / ((performance.now() - t0) / 1000);
  settled = null;
  check(result, sink, CONNS * PER_CONN * 2);
  return rps;
}

async function agentPool(total, workers, lat) {
  let next = 0;
  const sink = makeCountingSink();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: workers }, async () => {
    for (let n = next++; n < total; n = next++) {
      const t = performance.now();
      const result = await many.engine.run({ type: 'access', identifiers: { email: `user${n}@initech.example` }, connections: [names[n % CONNS]] }, { sink });
      lat?.push(performance.now() - t);
      check(result, sink);
    }
  }));
  const rps = total / ((performance.now() - t0) / 1000);
  if (sink.reports !== total * 2) throw new Error(`expected ${total * 2} reports, sink got ${sink.reports}`);
  return rps;
}

// Warm-up: JIT, sockets, secrets cache.
await rawJob();
await agentJob();
await rawPool(Math.min(N, 4000), CONCURRENCY);
await agentPool(Math.min(N, 4000), CONCURRENCY);

/** Run fn and add the process CPU time it used (µs) to cpu[key]. */
const cpu = { raw: 0, agent: 0, rawJobs: 0, agentJobs: 0 };
async function timed(key, fn) {
  const c0 = process.cpuUsage();
  const out = await fn();
  const c = process.cpuUsage(c0);
  cpu[key] += c.user + c.system;
  return out;
}

const best = { raw: 0, agent: 0, rawJobs: 0, agentJobs: 0 };
let rawLat = [], agentLat = [], rawJobsLat = [], agentJobsLat = [];
const rounds = [];
for (let r = 0; r < ROUNDS; r++) {
  const rl = [], al = [], rjl = [], ajl = [];
  const raw = await timed('raw', () => rawJob(rl));
  const agent = await timed('agent', () => agentJob(al));
  const rawJobs = await timed('rawJobs', () => rawPool(N, CONCURRENCY, rjl));
  const agentJobs = await timed('agentJobs', () => agentPool(N, CONCURRENCY, ajl));
  rounds.push({ raw: Math.round(raw), agent: Math.round(agent), raw_jobs: Math.round(rawJobs), agent_jobs: Math.round(agentJobs) });
  // Latencies come from the round with the best agent throughput, raw likewise.
  if (raw > best.raw) [best.raw, rawLat] = [raw, rl];
  if (agent > best.agent) [best.agent, agentLat] = [agent, al];
  if (rawJobs > best.rawJobs) [best.rawJobs, rawJobsLat] = [rawJobs, rjl];
  if (agentJobs > best.agentJobs) [best.agentJobs, agentJobsLat] = [agentJobs, ajl];
}

// Idle: one request at a time.
const rawIdle = [], agentIdle = [];
await rawPool(IDLE, 1, rawIdle);
await agentPool(IDLE, 1, agentIdle);

const q = (a, p) => quantile(a, p);
emit({
  queries: CONNS * PER_CONN,
  connections: CONNS,
  concurrency: CONCURRENCY,
  in_flight: Math.min(CONNS, CONCURRENCY),
  rounds,
  agent_rps: Math.round(best.agent),
  raw_rps: Math.round(best.raw),
  ratio: round(best.agent / best.raw, 3),
  agent_p50_ms: round(q(agentLat, 0.5), 3),
  agent_p99_ms: round(q(agentLat, 0.99), 3),
  raw_p50_ms: round(q(rawLat, 0.5), 3),
  raw_p99_ms: round(q(rawLat, 0.99), 3),
  p50_added_ms: round(q(agentLat, 0.5) - q(rawLat, 0.5), 3),
  p99_added_ms: round(q(agentLat, 0.99) - q(rawLat, 0.99), 3),
  // Client-process CPU per request (user + system): steadier than req/s on a shared machine.
  agent_cpu_us_per_req: Math.round(cpu.agent / (ROUNDS * CONNS * PER_CONN)),
  raw_cpu_us_per_req: Math.round(cpu.raw / (ROUNDS * CONNS * PER_CONN)),
  jobs_in_flight: CONCURRENCY,
  jobs_agent_rps: Math.round(best.agentJobs),
  jobs_raw_rps: Math.round(best.rawJobs),
  jobs_ratio: round(best.agentJobs / best.rawJobs, 3),
  jobs_p50_added_ms: round(q(agentJobsLat, 0.5) - q(rawJobsLat, 0.5), 3),
  jobs_agent_cpu_us_per_req: Math.round(cpu.agentJobs / (ROUNDS * N)),
  jobs_raw_cpu_us_per_req: Math.round(cpu.rawJobs / (ROUNDS * N)),
  jobs_p99_added_ms: round(q(agentJobsLat, 0.99) - q(rawJobsLat, 0.99), 3),
  idle_requests: IDLE,
  idle_raw_p50_ms: round(q(rawIdle, 0.5), 3),
  idle_p50_added_ms: round(q(agentIdle, 0.5) - q(rawIdle, 0.5), 3),
  idle_p99_added_ms: round(q(agentIdle, 0.99) - q(rawIdle, 0.99), 3),
});

await one.cleanup();
await many.cleanup();
await rawDispatcher.close();
await agentDispatcher.close();
await target.stop();
