// Case 4, service: `dsr-agent serve` (real processes, dist/cli.js) taking delete jobs whose three
// connections each answer in 5 ms. Embedded queue with one process; then Redis (BullMQ) with one and
// with two processes sharing the queue. Prints one JSON line; on a setup failure the line carries
// `skipped` with the reason and null figures.
//
// Per scenario: get a token, wait until the queue is empty, then 32 clients POST the jobs (time to
// accept = POST to 202) while the bench polls each process's /metrics (dsr_jobs_total) every 50 ms
// until all jobs are final; jobs/s = jobs / (first POST → last job final). Every job id is then
// read back with GET /api/v1/jobs/:id and must be final and succeeded.
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { DIST, accessConnection, benchConfig, emit, parseArgs, quantile, round, startTarget } from './lib.mjs';
import { cpuSeconds, dropQueue, getToken, makeAgentPool, makeApiClient, scrape, uniqueQueueName, withAgents as withAgentsOf } from './service-lib.mjs';

const args = parseArgs();
const JOBS = Number(args.jobs ?? (args.quick ? 150 : 5000));
const CLIENTS = Number(args.clients ?? 32);
const CONNECTIONS = 3;
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379';
// --agent-node-options="--cpu-prof --cpu-prof-dir=DIR": node options for the serve processes only (profiling).
const AGENT_NODE_OPTIONS = args['agent-node-options'];
// --scenarios embedded,redis: which to run (default both; --quick: embedded only, as Redis is
// measured by service-scaling.mjs too and each replica's start-up costs a second of CPU).
const SCENARIOS = String(args.scenarios ?? (args.quick ? 'embedded' : 'embedded,redis')).split(',');
const api = makeApiClient(CLIENTS);
const call = api.call;
const scrapeAll = async (agents) => (await Promise.all(agents.map((a) => scrape(api, a.url)))).reduce((s, m) => ({ done: s.done + m.done, depth: s.depth + m.depth }), { done: 0, depth: 0 });
const withAgents = (config, count, fn) => withAgentsOf(api, config, count, fn, { nodeOptions: AGENT_NODE_OPTIONS });

/** Submit JOBS delete jobs round-robin over `agents` and wait until all are final. */
async function measure(agents, label) {
  const tokens = await Promise.all(agents.map((a) => getToken(api, a.url)));
  // Each run has its own Redis queue (uniqueQueueName); this only guards against a slow start.
  for (const started = Date.now(); (await scrapeAll(agents)).depth > 0; await sleep(200)) {
    if (Date.now() - started > 120_000) throw new Error(`${label}: the queue did not drain within 120 s`);
  }
  const before = (await scrapeAll(agents)).done;
  const cpu0 = agents.map((a) => cpuSeconds(a.pid));
  const cpuSelf0 = process.cpuUsage();
  const ids = [];
  const accept = [];
  let next = 0;
  const t0 = performance.now();
  const submit = Promise.all(Array.from({ length: CLIENTS }, async () => {
    for (let n = next++; n < JOBS; n = next++) {
      const k = n % agents.length;
      const t = performance.now();
      const res = await call('POST', `${agents[k].url}/api/v1/jobs`, { token: tokens[k], body: { type: 'delete', identifiers: { email: `user${n}@initech.example` } } });
      accept.push(performance.now() - t);
      if (res.status !== 202) throw new Error(`${label}: POST /api/v1/jobs answered ${res.status}: ${res.text.slice(0, 300)}`);
      ids.push([k, res.json().id]);
    }
  }));
  let submitted = 0;
  submit.then(() => (submitted = performance.now() - t0), () => undefined);
  let finished;
  for (const started = Date.now(); ; await sleep(50)) {
    const { done } = await scrapeAll(agents);
    if (done - before >= JOBS) {
      finished = performance.now() - t0;
      break;
    }
    if (Date.now() - started > 300_000) throw new Error(`${label}: only ${done - before} of ${JOBS} jobs final after 300 s`);
  }
  await submit;
  const agentCpu = agents.reduce((sum, a, i) => sum + cpuSeconds(a.pid) - cpu0[i], 0);
  const selfCpu = process.cpuUsage(cpuSelf0);
  // Every job must be final and succeeded.
  let checked = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (checked < ids.length) {
      const [k, id] = ids[checked++];
      const res = await call('GET', `${agents[k].url}/api/v1/jobs/${id}`, { token: tokens[k] });
      const job = res.status === 200 ? res.json() : undefined;
      if (job?.status !== 'succeeded') throw new Error(`${label}: job ${id} is ${job?.status ?? res.status}: ${res.text.slice(0, 300)}`);
    }
  }));
  return {
    jobs_per_s: round(JOBS / (finished / 1000), 1),
    accept_p50_ms: round(quantile(accept, 0.5), 2),
    accept_p99_ms: round(quantile(accept, 0.99), 2),
    submit_s: round(submitted / 1000, 2),
    total_s: round(finished / 1000, 2),
    // CPU the serve processes used per job, and the share of one core they used over the run.
    agent_cpu_ms_per_job: round((agentCpu * 1000) / JOBS, 2),
    agent_cores_busy: round(agentCpu / (finished / 1000), 2),
    client_cores_busy: round((selfCpu.user + selfCpu.system) / 1e6 / (finished / 1000), 2),
  };
}

const target = await startTarget();
const connections = Array.from({ length: CONNECTIONS }, (_, i) => accessConnection(i, [`${target.url}/small?email={email}`], target.url));
const base = benchConfig(connections, { datagrail_agent_credentials_location: 'bench-client' });
const out = { jobs: JOBS, clients: CLIENTS, connections_per_job: CONNECTIONS, target_ms: 5 };
try {
  const { job_concurrency: jobConcurrency } = (await import(join(DIST, 'config/validate.js'))).validateConfig(base).agent;
  // Each job's connections run in parallel, so one process finishes at most job_concurrency jobs per 5 ms.
  out.limit_jobs_per_s_per_process = Math.round(jobConcurrency / 0.005);
  if (SCENARIOS.includes('embedded')) try {
    const embedded = await withAgents(base, 1, (agents) => measure(agents, 'embedded'));
    Object.assign(out, {
      embedded_jobs_per_s: embedded.jobs_per_s,
      accept_p50_ms: embedded.accept_p50_ms,
      accept_p99_ms: embedded.accept_p99_ms,
      embedded_total_s: embedded.total_s,
      embedded_agent_cpu_ms_per_job: embedded.agent_cpu_ms_per_job,
      embedded_agent_cores_busy: embedded.agent_cores_busy,
      embedded_client_cores_busy: embedded.client_cores_busy,
    });
  } catch (err) {
    out.skipped_embedded = err.message;
  }
  if (SCENARIOS.includes('redis')) try {
    const queueName = uniqueQueueName('service');
    const redis = { ...base, redis_url: REDIS_URL, agent: { queue_name: queueName } };
    let one, two;
    try {
      // The second replica joins after the first's run (the queue is empty then): one start-up fewer.
      const pool = makeAgentPool(api, redis, { nodeOptions: AGENT_NODE_OPTIONS });
      try {
        one = await measure(await pool.growTo(1), 'redis ×1');
        two = await measure(await pool.growTo(2), 'redis ×2');
      } finally {
        await pool.stop();
      }
    } finally {
      await dropQueue(REDIS_URL, queueName).catch(() => undefined);
    }
    Object.assign(out, {
      redis_1_jobs_per_s: one.jobs_per_s,
      redis_1_accept_p99_ms: one.accept_p99_ms,
      redis_1_agent_cpu_ms_per_job: one.agent_cpu_ms_per_job,
      redis_1_agent_cores_busy: one.agent_cores_busy,
      redis_2_jobs_per_s: two.jobs_per_s,
      redis_2_accept_p99_ms: two.accept_p99_ms,
      redis_2_agent_cpu_ms_per_job: two.agent_cpu_ms_per_job,
      redis_2_agent_cores_busy: two.agent_cores_busy,
      redis_scaling: round(two.jobs_per_s / one.jobs_per_s, 2),
    });
  } catch (err) {
    out.skipped_redis = err.message;
  }
} finally {
  await target.stop();
  await api.close();
}
emit(out);
