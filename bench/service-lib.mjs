// What the service cases share (service.mjs, service-scaling.mjs, service-rss.mjs): real
// `node dist/cli.js serve` processes, an HTTP client for their API, /metrics scraping, and CPU and
// memory readings from /proc (Linux; NaN elsewhere).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { BENCH_SECRETS, DIST, writeConfigDir } from './lib.mjs';

/** An HTTP client for the serve processes' API; `call(method, url, opts)` answers { status, text, json() }. */
export function makeApiClient(connections = 32) {
  const http = new Agent({ keepAliveTimeout: 30_000, connections });
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
  return { call, close: () => http.close() };
}

export async function freePort() {
  const srv = createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/**
 * Start `node dist/cli.js serve` on `configFile` with its own temp data dir; resolves once /healthz
 * answers. `nodeOptions` goes to NODE_OPTIONS (profiling).
 */
export async function startAgent(api, configFile, { nodeOptions } = {}) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'dsr-bench-data-'));
  const child = spawn(process.execPath, [join(DIST, 'cli.js'), 'serve', '--config', configFile], {
    env: { ...process.env, PORT: String(port), DSR_AGENT_DATA_DIR: dataDir, LOGLEVEL: 'ERROR', ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
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
      if ((await api.call('GET', `${url}/healthz`)).status === 200) return agent;
    } catch {
      // not listening yet
    }
  }
}

/**
 * Serve processes sharing one config, started as needed: `growTo(n)` starts the missing ones at
 * once (a queue's replicas can join between phases, so no phase pays for another's start-up);
 * `stop()` stops them all and removes the config.
 */
export function makeAgentPool(api, config, opts) {
  const dir = writeConfigDir(config);
  const agents = [];
  return {
    agents,
    async growTo(count) {
      const started = await Promise.allSettled(Array.from({ length: count - agents.length }, () => startAgent(api, dir.file, opts)));
      for (const s of started) if (s.status === 'fulfilled') agents.push(s.value);
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;
      return agents;
    },
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
      dir.cleanup();
    },
  };
}

/** Run `fn(agents)` with `count` serve processes on `config` (started at once), stopping them whatever happens. */
export async function withAgents(api, config, count, fn, opts) {
  const pool = makeAgentPool(api, config, opts);
  try {
    return await fn(await pool.growTo(count));
  } finally {
    await pool.stop();
  }
}

/** A bearer token from the agent's token endpoint (client credentials of BENCH_SECRETS['bench-client']). */
export async function getToken(api, url) {
  const client = BENCH_SECRETS['bench-client'];
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: client.client_id, client_secret: client.client_secret }).toString();
  const res = await api.call('POST', `${url}/api/v1/token`, { body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  if (res.status !== 200) throw new Error(`POST /api/v1/token answered ${res.status}: ${res.text.slice(0, 300)}`);
  return res.json().access_token;
}

/** dsr_jobs_total summed over labels, and dsr_queue_depth, from one process's /metrics. */
export async function scrape(api, url) {
  const { status, text } = await api.call('GET', `${url}/metrics`);
  if (status !== 200) throw new Error(`GET /metrics answered ${status}`);
  let done = 0;
  let depth = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('dsr_jobs_total{')) done += Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith('dsr_queue_depth ')) depth = Number(line.slice('dsr_queue_depth '.length));
  }
  return { done, depth };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
export function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** A process's resident set now, in MiB (VmRSS from /proc); NaN elsewhere. */
export function rssMiB(pid) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
    return Number(line.split(/\s+/)[1]) / 1024;
  } catch {
    return NaN;
  }
}

/** The whole machine's CPU time so far (all cores), from the first line of /proc/stat: { busy, total } in ticks. */
export function machineCpu() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const idle = f[3] + f[4]; // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

/** The machine's CPU use between two machineCpu() readings, in % of all cores. */
export const machineCpuPercent = (a, b) => (100 * (b.busy - a.busy)) / (b.total - a.total);

/** The pid of the local redis-server (for its CPU), or undefined. */
export function redisServerPid() {
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'redis-server') return Number(d);
      } catch {
        // gone
      }
    }
  } catch {
    // not Linux
  }
  return undefined;
}

/** A BullMQ queue name no other run uses, so runs never see each other's jobs. */
export const uniqueQueueName = (label) => `dsr-bench-${label}-${process.pid}-${Date.now().toString(36)}`;

/** Delete a bench queue's keys from Redis (BullMQ's obliterate), ignoring a missing Redis. */
export async function dropQueue(redisUrl, name) {
  const { Queue } = await import('bullmq');
  const queue = new Queue(name, { connection: { url: redisUrl } });
  try {
    await queue.obliterate({ force: true });
  } finally {
    await queue.close();
  }
}

/**
 * The inspector's WebSocket URL a process started with NODE_OPTIONS=--inspect=127.0.0.1:0 printed:
 * the last one, as the CLI restarts node in place (execve) with its heap flags and prints it again.
 */
export function inspectorUrl(output) {
  const m = [...output.matchAll(/Debugger listening on (ws:\/\/\S+)/g)].at(-1);
  if (!m) throw new Error(`the process printed no inspector URL (start it with NODE_OPTIONS=--inspect=127.0.0.1:0): ${output.slice(-300)}`);
  return m[1];
}

/**
 * Through a process's inspector: run a full garbage collection, then read V8's heap usage. What is
 * left is what the process holds, without the garbage RSS also counts. Returns { usedMiB, totalMiB }.
 */
export async function collectedHeap(wsUrl) {
  const ws = new WebSocket(wsUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = (ev) => reject(new Error(`could not connect to the inspector at ${wsUrl}: ${ev.error?.cause?.message ?? ev.error?.message ?? ev.message}`));
  });
  let id = 0;
  const pending = new Map();
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(`inspector: ${msg.error.message}`));
    else p.resolve(msg.result);
  };
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      pending.set(++id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    await send('HeapProfiler.collectGarbage');
    await send('HeapProfiler.collectGarbage'); // a second pass frees what the first one's finalizers released
    const { usedSize, totalSize } = await send('Runtime.getHeapUsage');
    return { usedMiB: usedSize / 2 ** 20, totalMiB: totalSize / 2 ** 20 };
  } finally {
    ws.close();
  }
}
