// Case 1, engine throughput: the agent's engine against raw undici, same target, same requests,
// same number in flight, alternating in one process. Prints one JSON line.
//
// job    (the case) one access job over 64 connections holding N/64 access queries each,
//        against /small (a JSON array of two records). A connection runs its queries in order, so
//        in flight = min(connections, connection_concurrency) = 64; raw undici runs 64 workers of
//        N/64 sequential requests: the same 64 in flight. A third side, `baseline`, is the least any
//        agent must do with those bodies: raw undici + JSON.parse + a minimal hand-written flatten
//        and CSV + one write per report to the same counting sink the agent gets (goal 2).
// empty  the same shape against /empty ([]): the request path alone, without report work.
// slow   the "job" shape against /slow (/small answered after 10 ms, a fast real API) with fewer
//        queries: the target's latency bounds both sides (50 in flight / 10 ms = 5,000 req/s at most).
// jobs   N single-connection access jobs (one query each), 64 jobs in flight, against raw undici
//        with 64 workers: every request also pays the per-job setup.
// idle   one request in flight: the latency the agent adds when nothing queues.
//
// Each round runs every variant agent-then-raw or raw-then-agent (alternating), so a burst of noise
// from other processes hits both sides. The agent's reports go to a counting sink (the CSV text
// is still produced, then dropped), so storage speed does not blur the agent's own cost.
import { Agent, request } from 'undici';
import { accessConnection, benchConfig, emit, makeBenchEngine, makeCountingSink, parseArgs, quantile, round, startTarget } from './lib.mjs';

const args = parseArgs();
const N = Number(args.queries ?? (args.quick ? 3000 : 20000));
const CONNS = Number(args.connections ?? 64);
const CONCURRENCY = Number(args.concurrency ?? 64);
const ROUNDS = Number(args.rounds ?? (args.quick ? 2 : 3));
const WARMUP = Number(args.warmup ?? 1);
const IDLE = Number(args.idle ?? (args.quick ? 300 : 2000));
const PER_CONN = Math.ceil(N / CONNS);
const TOTAL = CONNS * PER_CONN;
const SLOW_PER_CONN = Math.ceil(Number(args['slow-queries'] ?? (args.quick ? 1500 : 5000)) / CONNS);

const target = await startTarget();
const headers = { Authorization: 'Bearer bench-api-key', 'Content-Type': 'application/json' };
const rawDispatcher = new Agent({ keepAliveTimeout: 60_000 });
const agentDispatcher = new Agent({ keepAliveTimeout: 60_000 });

async function rawOnce(url, lat) {
  const t0 = performance.now();
  const res = await request(url, { method: 'GET', headers, dispatcher: rawDispatcher });
  if (res.statusCode !== 200) throw new Error(`target answered ${res.statusCode}`);
  await res.body.text();
  lat?.push(performance.now() - t0);
}

/**
 * The baseline's report: a minimal flatten (keys joined with `_`, array indexes, '' for null and
 * empty containers) written straight into key,value CSV lines, quoting only fields that need it.
 */
const NEEDS_QUOTES = /[",\r\n]/;
const csvField = (s) => (NEEDS_QUOTES.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
let csv = '';
function baselineWalk(key, v) {
  if (typeof v === 'string') csv += `${csvField(key)},${csvField(v)}\n`;
  else if (v === null || typeof v !== 'object') csv += `${csvField(key)},${v === null ? '' : v}\n`;
  else if (Array.isArray(v)) {
    // An index loop: for-in over an array is about twice as slow here.
    for (let i = 0; i < v.length; i++) baselineWalk(`${key}_${i}`, v[i]);
    if (v.length === 0) csv += `${csvField(key)},\n`;
  } else {
    let empty = true;
    for (const k in v) {
      empty = false;
      baselineWalk(`${key}_${k}`, v[k]);
    }
    if (empty) csv += `${csvField(key)},\n`;
  }
}
function baselineReport(obj) {
  csv = '';
  for (const k in obj) baselineWalk(k, obj[k]);
  return csv;
}

/** Baseline "job": as rawJob, then JSON.parse each body and write one report per object to `sink`. */
const baselineJob = (path, perConn = PER_CONN) => async (lat) => {
  const sink = makeCountingSink();
  await Promise.all(Array.from({ length: CONNS }, async (_, c) => {
    const uuid = `00000000-0000-4000-8000-${String(c).padStart(12, '0')}`;
    let n = 0;
    for (let k = 0; k < perConn; k++) {
      const t0 = performance.now();
      const res = await request(`${target.url}${path}?email=peter%40initech.example&c=${c}&q=${k}`, { method: 'GET', headers, dispatcher: rawDispatcher });
      if (res.statusCode !== 200) throw new Error(`target answered ${res.statusCode}`);
      const records = JSON.parse(await res.body.text());
      for (const obj of records) await sink.put(uuid, ++n, baselineReport(obj));
      lat.push(performance.now() - t0);
    }
  }));
  if (sink.reports !== CONNS * perConn * 2) throw new Error(`baseline wrote ${sink.reports} reports, expected ${CONNS * perConn * 2}`);
  return CONNS * perConn;
};

/** Raw "job": CONNS workers, perConn sequential requests each. */
const rawJob = (path, perConn = PER_CONN) => async (lat) => {
  await Promise.all(Array.from({ length: CONNS }, async (_, c) => {
    for (let k = 0; k < perConn; k++) await rawOnce(`${target.url}${path}?email=peter%40initech.example&c=${c}&q=${k}`, lat);
  }));
  return CONNS * perConn;
};

/** Raw pool: `workers` workers sharing `total` requests. */
const rawPool = (total, workers) => async (lat) => {
  let next = 0;
  await Promise.all(Array.from({ length: workers }, async () => {
    for (let n = next++; n < total; n = next++) await rawOnce(`${target.url}/small?email=user${n}%40initech.example&c=${n % CONNS}&q=0`, lat);
  }));
  return total;
};

let settled = null; // where querySettled puts per-query durations
const hooks = { querySettled: (e) => settled?.push(e.durationMs) };
const urls = (path, c, count) => Array.from({ length: count }, (_, k) => `${target.url}${path}?email={email}&c=${c}&q=${k}`);
const engineFor = (path, perConn) =>
  makeBenchEngine(benchConfig(Array.from({ length: CONNS }, (_, c) => accessConnection(c, urls(path, c, perConn), target.url)), { agent: { connection_concurrency: CONCURRENCY } }), {
    dispatcher: agentDispatcher,
    hooks,
  });
const engines = {
  small: await engineFor('/small', PER_CONN),
  empty: await engineFor('/empty', PER_CONN),
  slow: await engineFor('/slow', SLOW_PER_CONN),
  single: await engineFor('/small', 1),
};
const names = engines.single.config.connections.map((c) => c.name);

function check(result, sink, reports) {
  if (result.status !== 'succeeded') throw new Error(`agent job ${result.status}: ${JSON.stringify(result.connections.find((c) => c.error)?.error)}`);
  if (reports !== undefined && sink.reports !== reports) throw new Error(`expected ${reports} reports, the sink got ${sink.reports}`);
}

/** Agent "job": one access job over every connection. */
const agentJob = (engine, objectsPer, perConn = PER_CONN) => async (lat) => {
  const sink = makeCountingSink();
  settled = lat;
  const result = await engine.run({ type: 'access', identifiers: { email: 'peter@initech.example' } }, { sink });
  settled = null;
  check(result, sink, CONNS * perConn * objectsPer);
  return CONNS * perConn;
};

/** Agent pool: `workers` workers sharing `total` single-connection jobs; lat gets each job's wall time. */
const agentPool = (total, workers) => async (lat) => {
  let next = 0;
  const sink = makeCountingSink();
  await Promise.all(Array.from({ length: workers }, async () => {
    for (let n = next++; n < total; n = next++) {
      const t = performance.now();
      const result = await engines.single.engine.run({ type: 'access', identifiers: { email: `user${n}@initech.example` }, connections: [names[n % CONNS]] }, { sink });
      lat?.push(performance.now() - t);
      check(result, sink);
    }
  }));
  check({ status: 'succeeded' }, sink, total * 2);
  return total;
};

const variants = {
  job: { agent: agentJob(engines.small.engine, 2), raw: rawJob('/small'), baseline: baselineJob('/small') },
  empty: { agent: agentJob(engines.empty.engine, 0), raw: rawJob('/empty') },
  slow: { agent: agentJob(engines.slow.engine, 2, SLOW_PER_CONN), raw: rawJob('/slow', SLOW_PER_CONN) },
  jobs: { agent: agentPool(N, CONCURRENCY), raw: rawPool(N, CONCURRENCY) },
};

/** One measured run: requests/s, client CPU µs per request, latencies (ms). */
async function measure(fn) {
  const lat = [];
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const count = await fn(lat);
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { rps: count / seconds, cpu: (c.user + c.system) / count, lat };
}

const stats = Object.fromEntries(Object.entries(variants).map(([k, v]) => [k, Object.fromEntries(Object.keys(v).map((side) => [side, []]))]));
for (let r = 0; r < WARMUP + ROUNDS; r++) {
  for (const [name, v] of Object.entries(variants)) {
    for (const side of r % 2 ? Object.keys(v).reverse() : Object.keys(v)) {
      const m = await measure(v[side]);
      if (r >= WARMUP) stats[name][side].push(m);
    }
  }
}
const idle = { agent: await measure(agentPool(IDLE, 1)), raw: await measure(rawPool(IDLE, 1)) };

const median = (xs) => quantile([...xs], 0.5);
const lat = (runs) => runs.flatMap((m) => m.lat);
function summary(name) {
  const s = stats[name];
  const best = (side) => Math.max(...s[side].map((m) => m.rps));
  const a = lat(s.agent), r = lat(s.raw);
  return {
    agent_rps: Math.round(best('agent')),
    raw_rps: Math.round(best('raw')),
    ratio: round(best('agent') / best('raw'), 3),
    ratio_paired_median: round(median(s.agent.map((m, i) => m.rps / s.raw[i].rps)), 3),
    p50_added_ms: round(quantile(a, 0.5) - quantile(r, 0.5), 3),
    p99_added_ms: round(quantile(a, 0.99) - quantile(r, 0.99), 3),
    agent_p50_ms: round(quantile(a, 0.5), 3),
    agent_p99_ms: round(quantile(a, 0.99), 3),
    raw_p50_ms: round(quantile(r, 0.5), 3),
    raw_p99_ms: round(quantile(r, 0.99), 3),
    agent_cpu_us_per_req: Math.round(median(s.agent.map((m) => m.cpu))),
    raw_cpu_us_per_req: Math.round(median(s.raw.map((m) => m.cpu))),
    rounds: s.agent.map((m, i) => ({ agent_rps: Math.round(m.rps), raw_rps: Math.round(s.raw[i].rps) })),
  };
}
/** Goal 2: the agent against the least any agent must do with the same bodies. */
function baselineSummary() {
  const s = stats.job;
  const best = (side) => Math.max(...s[side].map((m) => m.rps));
  return {
    baseline_rps: Math.round(best('baseline')),
    // The median of the rounds' own agent/baseline ratios: on a shared machine the best rounds of
    // each side may come from different moments, a round's two sides run back to back.
    baseline_ratio: round(median(s.agent.map((m, i) => m.rps / s.baseline[i].rps)), 3),
    baseline_ratio_best: round(best('agent') / best('baseline'), 3),
    baseline_cpu_us_per_req: Math.round(median(s.baseline.map((m) => m.cpu))),
    baseline_p50_ms: round(quantile(lat(s.baseline), 0.5), 3),
    baseline_rounds: s.baseline.map((m) => Math.round(m.rps)),
  };
}
const prefixed = (prefix, o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [`${prefix}${k}`, v]));

emit({
  queries: TOTAL,
  connections: CONNS,
  connection_concurrency: CONCURRENCY,
  in_flight: Math.min(CONNS, CONCURRENCY),
  ...summary('job'),
  ...baselineSummary(),
  ...prefixed('empty_', summary('empty')),
  slow_queries: CONNS * SLOW_PER_CONN,
  slow_limit_rps: Math.round(CONNS / 0.01),
  ...prefixed('slow_', summary('slow')),
  jobs_in_flight: CONCURRENCY,
  ...prefixed('jobs_', summary('jobs')),
  idle_requests: IDLE,
  idle_raw_p50_ms: round(quantile(idle.raw.lat, 0.5), 3),
  idle_p50_added_ms: round(quantile(idle.agent.lat, 0.5) - quantile(idle.raw.lat, 0.5), 3),
  idle_p99_added_ms: round(quantile(idle.agent.lat, 0.99) - quantile(idle.raw.lat, 0.99), 3),
});

for (const e of Object.values(engines)) await e.cleanup();
await rawDispatcher.close();
await agentDispatcher.close();
await target.stop();
