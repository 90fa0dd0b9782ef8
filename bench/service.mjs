// Case 4, service: `dsr-agent serve` (real processes, dist/cli.js) taking delete jobs whose three
// connections each answer in 5 ms. Embedded queue with one process; then Redis (BullMQ) with one and
// with two processes sharing the queue. Prints one JSON line; on a setup failure the line carries
// `skipped` with the reason and null figures.
//
// Per scenario: get a token, wait until the queue is empty, then 32 clients POST the jobs (time to
// accept = POST to 202) while the bench polls each process's /metrics (dsr_jobs_total) every 50 ms
// until all jobs are final; jobs/s = jobs / (first POST → last job final). Every job id is then
// read back with GET /api/v1/jobs/:id and must be final and succeeded.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { BENCH_SECRETS, DIST, accessConnection, benchConfig, emit, parseArgs, quantile, round, startTarget, writeConfigDir } from './lib.mjs';

const args = parseArgs();
const JOBS = Number(args.jobs ?? (args.quick ? 500 : 5000));
const CLIENTS = Number(args.clients ?? 32);
const CONNECTIONS = 3;
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379';
// --agent-node-options="--cpu-prof --cpu-prof-dir=DIR": node options for the serve processes only (profiling).
const AGENT_NODE_OPTIONS = args['agent-node-options'];
// --scenarios embedded,redis: which to run (default both).
const SCENARIOS = String(args.scenarios ?? 'embedded,redis').split(',');
const client = BENCH_SECRETS['bench-client'];
const http = new Agent({ keepAliveTimeout: 30_000, connections: CLIENTS });

async function freePort() {
  const srv = createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

async function call(method, url, { body, headers = {}, token } = {}) {
  const res = await request(url, {
    method,
    dispatcher: http,
    headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body && !headers['content-type'] ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, text, json: () => JSON.parse(text) };
}

/** Start `node dist/cli.js serve`; resolves once /healthz answers. */
async function startAgent(configFile) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'dsr-bench-data-'));
  const child = spawn(process.execPath, [join(DIST, 'cli.js'), 'serve', '--config', configFile], {
    env: { ...process.env, PORT: String(port), DSR_AGENT_DATA_DIR: dataDir, LOGLEVEL: 'ERROR', ...(AGENT_NODE_OPTIONS ? { NODE_OPTIONS: AGENT_NODE_OPTIONS } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (d) => (output = (output + d).slice(-4000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  const agent = {
    url,
    pid: child.pid,
    output: () => output.trim(),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  for (const started = Date.now(); ; await sleep(100)) {
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${output.trim().slice(-500)}`);
    if (Date.now() - started > 30_000) {
      await agent.stop();
      throw new Error(`serve did not answer /healthz within 30 s: ${output.trim().slice(-500)}`);
    }
    try {
      if ((await call('GET', `${url}/healthz`)).status === 200) return agent;
    } catch {
      // not listening yet
    }
  }
}

async function getToken(url) {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: client.client_id, client_secret: client.client_secret }).toString();
  const res = await call('POST', `${url}/api/v1/token`, { body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  if (res.status !== 200) throw new Error(`POST /api/v1/token answered ${res.status}: ${res.text.slice(0, 300)}`);
  return res.json().access_token;
}

/** dsr_jobs_total summed over labels, and dsr_queue_depth, from one process's /metrics. */
async function scrape(url) {
  const { status, text } = await call('GET', `${url}/metrics`);
  if (status !== 200) throw new Error(`GET /metrics answered ${status}`);
  let done = 0;
  let depth = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('dsr_jobs_total{')) done += Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith('dsr_queue_depth ')) depth = Number(line.slice('dsr_queue_depth '.length));
  }
  return { done, depth };
}
const scrapeAll = async (agents) => (await Promise.all(agents.map((a) => scrape(a.url)))).reduce((s, m) => ({ done: s.done + m.done, depth: s.depth + m.depth }), { done: 0, depth: 0 });

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** Submit JOBS delete jobs round-robin over `agents` and wait until all are final. */
async function measure(agents, label) {
  const tokens = await Promise.all(agents.map((a) => getToken(a.url)));
  // A queue shared through Redis may hold jobs from an earlier run: let them drain first.
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

/** Run `fn(agents)` with `count` serve processes on `config`, stopping them whatever happens. */
async function withAgents(config, count, fn) {
  const dir = writeConfigDir(config);
  const agents = [];
  try {
    for (let i = 0; i < count; i++) agents.push(await startAgent(dir.file));
    return await fn(agents);
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    dir.cleanup();
  }
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
    const redis = { ...base, redis_url: REDIS_URL };
    const one = await withAgents(redis, 1, (agents) => measure(agents, 'redis ×1'));
    const two = await withAgents(redis, 2, (agents) => measure(agents, 'redis ×2'));
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
  await http.close();
}
emit(out);
