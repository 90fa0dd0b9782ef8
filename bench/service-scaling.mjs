// Case 4b, queue scaling (issue 11, goal 5): does the Redis queue scale when the work is waiting,
// not CPU? Access jobs over 3 connections whose target (bench/latency-target.mjs, its own process)
// answers `[]` after 50 ms; `job_concurrency` fixed (2); 1, 2 and 4 `node dist/cli.js serve`
// replicas on one Redis and one BullMQ queue of this run's own (uniqueQueueName, dropped at the end).
// The replicas are started once: the 1-replica phase runs on the first, then a second joins, then
// two more (the queue is empty between phases), so no phase pays for another's start-up.
// Prints one JSON line; on a setup failure it carries `skipped` with the reason and null figures.
//
// Per replica count r, two phases on the same processes:
// - saturated: r × JOBS_PER_REPLICA jobs POSTed as fast as 16 clients can (faster than r replicas
//   finish them, so the queue never runs dry). jobs/s = the jobs finished between the 10th and the
//   90th percentile of finished_at, over that time (ramp-up and the tail left out).
//   Physical limit: r × job_concurrency / 50 ms.
// - paced: jobs POSTed open-loop at LOAD (0.7) × the saturated jobs/s for PACED_S seconds: the
//   latency a job sees when the replicas keep up. Time to first byte = POST sent → the job's first
//   request arrives at the target; queue latency = the job's started_at − created_at (accepted →
//   started, as the API reports them, ms resolution).
// In each phase the machine's CPU (all processes, from /proc/stat) and the bench's own processes'
// CPU (serve replicas, target, redis-server, this client) are recorded: the scaling goal only means
// something while the machine has CPU to spare (< 70 %).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BENCH, accessConnection, benchConfig, emit, parseArgs, quantile, round, startChild } from './lib.mjs';
import { cpuSeconds, dropQueue, getToken, machineCpu, machineCpuPercent, makeApiClient, makeAgentPool, redisServerPid, scrape, uniqueQueueName } from './service-lib.mjs';

const args = parseArgs();
const REPLICAS = String(args.replicas ?? '1,2,4').split(',').map(Number);
const JOB_CONCURRENCY = Number(args['job-concurrency'] ?? 2);
const TARGET_MS = Number(args['target-ms'] ?? 50);
const CONNECTIONS = Number(args.connections ?? 3);
const JOBS_PER_REPLICA = Number(args['jobs-per-replica'] ?? (args.quick ? 30 : 300));
const PACED_S = Number(args['paced-seconds'] ?? (args.quick ? 1 : 6));
const LOAD = Number(args.load ?? 0.7);
const CLIENTS = Number(args.clients ?? 16);
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379';
const api = makeApiClient(CLIENTS * 2);
const epoch = () => performance.timeOrigin + performance.now();
const ms = (iso) => Date.parse(iso);

/** CPU of the machine and of the bench's processes from now until `stop()`. */
function cpuWindow(agents, pids) {
  const m0 = machineCpu();
  const a0 = agents.map((a) => cpuSeconds(a.pid));
  const p0 = pids.map((p) => cpuSeconds(p));
  const s0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const agentCpu = agents.reduce((sum, a, i) => sum + cpuSeconds(a.pid) - a0[i], 0);
    const otherCpu = pids.reduce((sum, p, i) => sum + (cpuSeconds(p) - p0[i] || 0), 0);
    const self = process.cpuUsage(s0);
    const selfCpu = (self.user + self.system) / 1e6;
    return {
      machine_cpu_pct: round(machineCpuPercent(m0, machineCpu()), 1),
      bench_cores_busy: round((agentCpu + otherCpu + selfCpu) / seconds, 2),
      agent_cores_busy: round(agentCpu / seconds, 2),
      agent_cpu_s: agentCpu,
    };
  };
}

async function waitFinal(agents, before, count, label) {
  for (const started = Date.now(); ; await sleep(50)) {
    const done = (await Promise.all(agents.map((a) => scrape(api, a.url)))).reduce((s, m) => s + m.done, 0);
    if (done - before >= count) return;
    if (Date.now() - started > 300_000) throw new Error(`${label}: only ${done - before} of ${count} jobs final after 300 s`);
  }
}

/** GET every job; each must have succeeded. Returns the views. */
async function readJobs(ids, agents, tokens, label) {
  const views = new Array(ids.length);
  let next = 0;
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    for (let i = next++; i < ids.length; i = next++) {
      const [k, id] = ids[i];
      const res = await api.call('GET', `${agents[k].url}/api/v1/jobs/${id}`, { token: tokens[k] });
      const job = res.status === 200 ? res.json() : undefined;
      if (job?.status !== 'succeeded') throw new Error(`${label}: job ${id} is ${job?.status ?? res.status}: ${res.text.slice(0, 300)}`);
      views[i] = job;
    }
  }));
  return views;
}

async function post(agents, tokens, k, email, label) {
  const res = await api.call('POST', `${agents[k].url}/api/v1/jobs`, { token: tokens[k], body: { type: 'access', identifiers: { email } } });
  if (res.status !== 202) throw new Error(`${label}: POST /api/v1/jobs answered ${res.status}: ${res.text.slice(0, 300)}`);
  return res.json().id;
}

const totalDone = async (agents) => (await Promise.all(agents.map((a) => scrape(api, a.url)))).reduce((s, m) => s + m.done, 0);

/** Saturated phase: jobs/s with the queue never empty. */
async function saturated(agents, tokens, r, pids, target) {
  const label = `${r} replica(s), saturated`;
  const count = r * JOBS_PER_REPLICA;
  const before = await totalDone(agents);
  const cpu = cpuWindow(agents, pids);
  const ids = [];
  let next = 0;
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    for (let n = next++; n < count; n = next++) {
      const k = n % agents.length;
      ids.push([k, await post(agents, tokens, k, `sat-${r}-${n}@bench.example`, label)]);
    }
  }));
  await waitFinal(agents, before, count, label);
  const usage = cpu();
  const views = await readJobs(ids, agents, tokens, label);
  await target.arrivals(); // forget them
  const finished = views.map((v) => ms(v.finished_at)).sort((a, b) => a - b);
  const lo = Math.floor(0.1 * count);
  const hi = Math.floor(0.9 * count);
  const first = Math.min(...views.map((v) => ms(v.created_at)));
  return {
    jobs: count,
    jobs_per_s: round((hi - lo) / ((finished[hi] - finished[lo]) / 1000), 1),
    jobs_per_s_whole: round(count / ((finished.at(-1) - first) / 1000), 1),
    limit_jobs_per_s: round((r * JOB_CONCURRENCY) / (TARGET_MS / 1000), 1),
    machine_cpu_pct: usage.machine_cpu_pct,
    bench_cores_busy: usage.bench_cores_busy,
    agent_cores_busy: usage.agent_cores_busy,
    agent_cpu_ms_per_job: round((usage.agent_cpu_s * 1000) / count, 2),
  };
}

/** Paced phase: open-loop POSTs at `rate` jobs/s for PACED_S seconds; latency per job. */
async function paced(agents, tokens, r, rate, pids, target) {
  const label = `${r} replica(s), paced`;
  const count = Math.max(10, Math.round(rate * PACED_S));
  const before = await totalDone(agents);
  const cpu = cpuWindow(agents, pids);
  const sent = new Array(count);
  const accepted = new Array(count);
  const posts = [];
  const t0 = performance.now();
  for (let n = 0; n < count; n++) {
    const due = t0 + (n * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const k = n % agents.length;
    sent[n] = epoch();
    posts.push(post(agents, tokens, k, `paced-${r}-${n}@bench.example`, label).then((id) => {
      accepted[n] = epoch();
      return [k, id];
    }));
  }
  const ids = await Promise.all(posts);
  await waitFinal(agents, before, count, label);
  const usage = cpu();
  const views = await readJobs(ids, agents, tokens, label);
  const arrivals = await target.arrivals();
  const ttfb = [];
  const queue = [];
  const accept = [];
  for (let n = 0; n < count; n++) {
    const arrived = arrivals[`paced-${r}-${n}@bench.example`];
    if (arrived === undefined) throw new Error(`${label}: the target never saw job ${n}`);
    ttfb.push(arrived - sent[n]);
    queue.push(ms(views[n].started_at) - ms(views[n].created_at));
    accept.push(accepted[n] - sent[n]);
  }
  const q = (xs, p) => round(quantile(xs, p), 1);
  return {
    jobs: count,
    offered_jobs_per_s: round(rate, 1),
    achieved_jobs_per_s: round(count / ((performance.now() - t0) / 1000), 1),
    ttfb_p50_ms: q(ttfb, 0.5),
    ttfb_p99_ms: q(ttfb, 0.99),
    queue_latency_p50_ms: q(queue, 0.5),
    queue_latency_p99_ms: q(queue, 0.99),
    accept_p50_ms: q(accept, 0.5),
    accept_p99_ms: q(accept, 0.99),
    machine_cpu_pct: usage.machine_cpu_pct,
    bench_cores_busy: usage.bench_cores_busy,
  };
}

const out = {
  latency_target_ms: TARGET_MS,
  latency_job_concurrency: JOB_CONCURRENCY,
  latency_connections_per_job: CONNECTIONS,
  latency_jobs_per_replica: JOBS_PER_REPLICA,
  latency_paced_load: LOAD,
  latency_scaling_2: null,
  latency_scaling_4: null,
  queue_latency_p50_ms: null,
  queue_latency_p99_ms: null,
  ttfb_p50_ms: null,
  ttfb_p99_ms: null,
};
const t = startChild(join(BENCH, 'latency-target.mjs'));
try {
  const { port } = await t.ready;
  const base = `http://127.0.0.1:${port}`;
  const target = { arrivals: async () => (await api.call('GET', `${base}/arrivals`)).json() };
  const pids = [t.child.pid, redisServerPid()].filter(Boolean);
  const connections = Array.from({ length: CONNECTIONS }, (_, i) => accessConnection(i, [`${base}/wait?ms=${TARGET_MS}&job={email}`], base));
  const phases = {};
  const queueName = uniqueQueueName('scale');
  const config = benchConfig(connections, {
    datagrail_agent_credentials_location: 'bench-client',
    redis_url: REDIS_URL,
    agent: { queue_name: queueName, job_concurrency: JOB_CONCURRENCY },
  });
  const pool = makeAgentPool(api, config);
  const tokens = [];
  try {
    for (const r of [...REPLICAS].sort((a, b) => a - b)) {
      const agents = await pool.growTo(r);
      while (tokens.length < agents.length) tokens.push(await getToken(api, agents[tokens.length].url));
      const sat = await saturated(agents, tokens, r, pids, target);
      const pace = await paced(agents, tokens, r, LOAD * sat.jobs_per_s, pids, target);
      phases[r] = { saturated: sat, paced: pace };
      process.stderr.write(` [${r}×: ${sat.jobs_per_s} jobs/s, CPU ${sat.machine_cpu_pct} %]`);
    }
  } finally {
    await pool.stop();
    await dropQueue(REDIS_URL, queueName).catch(() => undefined);
  }
  for (const [r, p] of Object.entries(phases)) {
    out[`latency_jobs_per_s_${r}`] = p.saturated.jobs_per_s;
    out[`latency_limit_jobs_per_s_${r}`] = p.saturated.limit_jobs_per_s;
    out[`latency_machine_cpu_pct_${r}`] = p.saturated.machine_cpu_pct;
    out[`latency_bench_cores_busy_${r}`] = p.saturated.bench_cores_busy;
    out[`latency_agent_cpu_ms_per_job_${r}`] = p.saturated.agent_cpu_ms_per_job;
    out[`queue_latency_p99_ms_${r}`] = p.paced.queue_latency_p99_ms;
    out[`ttfb_p99_ms_${r}`] = p.paced.ttfb_p99_ms;
  }
  const one = phases[1]?.saturated.jobs_per_s;
  if (one && phases[2]) out.latency_scaling_2 = round(phases[2].saturated.jobs_per_s / one, 2);
  if (one && phases[4]) out.latency_scaling_4 = round(phases[4].saturated.jobs_per_s / one, 2);
  // The headline latencies: the paced phase with the most replicas.
  const most = phases[Math.max(...Object.keys(phases).map(Number))]?.paced;
  if (most) {
    out.latency_replicas_for_latency = Math.max(...Object.keys(phases).map(Number));
    Object.assign(out, {
      queue_latency_p50_ms: most.queue_latency_p50_ms,
      queue_latency_p99_ms: most.queue_latency_p99_ms,
      ttfb_p50_ms: most.ttfb_p50_ms,
      ttfb_p99_ms: most.ttfb_p99_ms,
    });
  }
  out.latency_phases = phases;
} catch (err) {
  out.skipped_latency = err.message;
} finally {
  await t.stop();
  await api.close();
}
emit(out);
