// Case 4b, queue scaling (issue 11, goal 5): does the Redis queue scale when the work is waiting,
// not CPU? Access jobs over 3 connections whose target (bench/latency-target.mjs, its own process)
// answers `[]` after 50 ms; `job_concurrency` fixed (2); groups of 1, 2 and 4 `node dist/cli.js
// serve` replicas on one Redis, each group on a BullMQ queue of its own (uniqueQueueName, dropped at
// the end). All groups are started at once and warmed up (WARMUP_PER_REPLICA unmeasured jobs per
// replica); a group whose queue is empty only waits on Redis, so it costs the others nothing.
// Prints one JSON line; on a setup failure it carries `skipped_latency` with the reason and nulls.
//
// Rounds (ROUNDS; the order of the groups rotates): each group runs a saturated phase in turn, so
// load from other processes on a shared machine hits every group alike; the scaling figures are
// the median over rounds of each round's own ratio (jobs/s of r replicas / jobs/s of 1).
// - saturated: r × JOBS_PER_REPLICA jobs POSTed as fast as 16 clients can (faster than r replicas
//   finish them, so the queue never runs dry). jobs/s = the jobs finished between the 10th and the
//   90th percentile of finished_at, over that time (ramp-up and the tail left out).
//   Physical limit: r × job_concurrency / 50 ms.
// - then, per group (--quick: the largest only), paced: jobs POSTed open-loop at LOAD (0.7) × the group's median saturated jobs/s
//   for PACED_S seconds: the latency a job sees when the replicas keep up. Time to first byte =
//   POST sent → the job's first request arrives at the target; queue latency = the job's
//   started_at − created_at (accepted → started, as the API reports them, ms resolution).
// In each phase the machine's CPU (all processes, from /proc/stat) and the bench's own processes'
// CPU (serve replicas, target, redis-server, this client) are recorded: the scaling goal only means
// something while the machine has CPU to spare (< 70 %).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BENCH, accessConnection, benchConfig, emit, parseArgs, quantile, round, startChild } from './lib.mjs';
import { cpuSeconds, dropQueue, getToken, machineCpu, machineCpuPercent, makeApiClient, makeAgentPool, redisServerPid, scrape, uniqueQueueName } from './service-lib.mjs';

const args = parseArgs();
// --quick: 1 and 2 replicas only (each start-up costs a second of CPU), so latency_scaling_4 is null.
const REPLICAS = String(args.replicas ?? (args.quick ? '1,2' : '1,2,4')).split(',').map(Number);
const JOB_CONCURRENCY = Number(args['job-concurrency'] ?? 2);
const TARGET_MS = Number(args['target-ms'] ?? 50);
const CONNECTIONS = Number(args.connections ?? 3);
const JOBS_PER_REPLICA = Number(args['jobs-per-replica'] ?? (args.quick ? 15 : 120));
const ROUNDS = Number(args.rounds ?? (args.quick ? 1 : 3));
const WARMUP_PER_REPLICA = Number(args['warmup-per-replica'] ?? (args.quick ? 3 : 20));
const PACED_S = Number(args['paced-seconds'] ?? (args.quick ? 0.7 : 4));
const LOAD = Number(args.load ?? 0.7);
const CLIENTS = Number(args.clients ?? 16);
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379';
// --agent-node-options="--cpu-prof --cpu-prof-dir=DIR": node options for the serve processes only (profiling).
const AGENT_NODE_OPTIONS = args['agent-node-options'];
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
  // Every 200 ms: /metrics costs the replica CPU (prom-client renders every metric), and jobs/s
  // comes from the jobs' own timestamps, not from when this loop notices.
  for (const started = Date.now(); ; await sleep(200)) {
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

/** Unmeasured jobs first, so that a replica that just joined has its code warm (JIT) and its connections open. */
async function warmUp(agents, tokens, r, target) {
  const count = r * WARMUP_PER_REPLICA;
  const before = await totalDone(agents);
  await Promise.all(Array.from({ length: count }, (_, n) => post(agents, tokens, n % agents.length, `warm-${r}-${n}@bench.example`, 'warm-up')));
  await waitFinal(agents, before, count, `${r} replica(s), warm-up`);
  await target.arrivals(); // forget them
}

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
  const run = views.map((v) => ms(v.finished_at) - ms(v.started_at));
  return {
    jobs: count,
    jobs_per_s: round((hi - lo) / ((finished[hi] - finished[lo]) / 1000), 1),
    jobs_per_s_whole: round(count / ((finished.at(-1) - first) / 1000), 1),
    limit_jobs_per_s: round((r * JOB_CONCURRENCY) / (TARGET_MS / 1000), 1),
    // started_at → finished_at: the target's 50 ms plus the agent's own time per job.
    job_ms_p50: round(quantile([...run], 0.5), 1),
    job_ms_p99: round(quantile([...run], 0.99), 1),
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
    // What was really offered: the POSTs' sending rate (the timer may run late on a busy machine).
    posted_jobs_per_s: round((count - 1) / ((sent[count - 1] - sent[0]) / 1000), 1),
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
  const groups = [...REPLICAS].sort((x, y) => x - y).map((r) => {
    const queueName = uniqueQueueName(`scale${r}`);
    const config = benchConfig(connections, {
      datagrail_agent_credentials_location: 'bench-client',
      redis_url: REDIS_URL,
      agent: { queue_name: queueName, job_concurrency: JOB_CONCURRENCY },
    });
    return { r, queueName, pool: makeAgentPool(api, config, { nodeOptions: AGENT_NODE_OPTIONS }), tokens: [], runs: [] };
  });
  const phases = {};
  try {
    await Promise.all(groups.map((g) => g.pool.growTo(g.r)));
    for (const g of groups) {
      for (const a of g.pool.agents) g.tokens.push(await getToken(api, a.url));
      await warmUp(g.pool.agents, g.tokens, g.r, target);
    }
    for (let round_ = 0; round_ < ROUNDS; round_++) {
      for (let i = 0; i < groups.length; i++) {
        const g = groups[(i + round_) % groups.length];
        const sat = await saturated(g.pool.agents, g.tokens, g.r, pids, target);
        g.runs.push(sat);
        process.stderr.write(` [${g.r}×: ${sat.jobs_per_s} jobs/s, CPU ${sat.machine_cpu_pct} %]`);
      }
    }
    const med = (xs) => quantile([...xs], 0.5);
    for (const g of groups) {
      const rate = med(g.runs.map((x) => x.jobs_per_s));
      // --quick: the paced phase of the largest group only.
      const pace = PACED_S > 0 && (!args.quick || g === groups.at(-1)) ? await paced(g.pool.agents, g.tokens, g.r, LOAD * rate, pids, target) : undefined;
      phases[g.r] = {
        jobs_per_s: round(rate, 1),
        limit_jobs_per_s: g.runs[0].limit_jobs_per_s,
        machine_cpu_pct_max: Math.max(...g.runs.map((x) => x.machine_cpu_pct)),
        machine_cpu_pct_median: med(g.runs.map((x) => x.machine_cpu_pct)),
        bench_cores_busy: med(g.runs.map((x) => x.bench_cores_busy)),
        agent_cpu_ms_per_job: med(g.runs.map((x) => x.agent_cpu_ms_per_job)),
        saturated: g.runs,
        paced: pace,
      };
    }
  } finally {
    await Promise.all(groups.map((g) => g.pool.stop()));
    await Promise.all(groups.map((g) => dropQueue(REDIS_URL, g.queueName).catch(() => undefined)));
  }
  for (const [r, p] of Object.entries(phases)) {
    out[`latency_jobs_per_s_${r}`] = p.jobs_per_s;
    out[`latency_limit_jobs_per_s_${r}`] = p.limit_jobs_per_s;
    out[`latency_machine_cpu_pct_${r}`] = p.machine_cpu_pct_median;
    out[`latency_machine_cpu_pct_max_${r}`] = p.machine_cpu_pct_max;
    out[`latency_bench_cores_busy_${r}`] = p.bench_cores_busy;
    out[`latency_agent_cpu_ms_per_job_${r}`] = p.agent_cpu_ms_per_job;
    if (p.paced) {
      out[`queue_latency_p99_ms_${r}`] = p.paced.queue_latency_p99_ms;
      out[`ttfb_p99_ms_${r}`] = p.paced.ttfb_p99_ms;
    }
  }
  // Scaling: the median over rounds of each round's own ratio to the 1-replica group.
  const ratios = (r) => {
    const one = groups.find((g) => g.r === 1)?.runs;
    const other = groups.find((g) => g.r === r)?.runs;
    return one && other ? one.map((x, i) => other[i].jobs_per_s / x.jobs_per_s) : [];
  };
  for (const r of [2, 4]) {
    const xs = ratios(r);
    if (xs.length) {
      out[`latency_scaling_${r}`] = round(quantile([...xs], 0.5), 2);
      out[`latency_scaling_${r}_rounds`] = xs.map((x) => round(x, 2));
    }
  }
  out.latency_rounds = ROUNDS;
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
