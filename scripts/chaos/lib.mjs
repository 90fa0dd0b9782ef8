// Shared helpers of `npm run chaos`: a target API that counts hits per job, `dsr-agent serve` child
// processes, an HTTP client that turns every failure into a label, a job book that remembers what
// the client saw, and the assessment of a run (accepted / lost / stuck / run twice).
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, buildConnector, request } from 'undici';

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLIENT_ID = 'chaos-client';
export const CLIENT_SECRET = 'chaos-client-secret-7Yp2vQ';
export const CONNECTION_UUID = 'c4a05000-0000-4000-8000-000000000001';
/** Identifiers are `<job id>@chaos.test`, so a hit at the target names its job. */
export const emailOf = (id) => `${id}@chaos.test`;

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createNetServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const tempDir = (prefix) => mkdtempSync(join(tmpdir(), `dsr-chaos-${prefix}-`));

/** Run `fn` over `items` with at most `n` at once. */
export async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    for (let i = next++; i < items.length; i = next++) await fn(items[i], i);
  }));
}

export const randomBetween = (min, max) => min + Math.random() * (max - min);

/** Poll `check` every `everyMs` until it returns a truthy value (returned) or `ms` pass (undefined). */
export async function waitUntil(check, ms, everyMs = 100) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() >= deadline) return undefined;
    await sleep(everyMs);
  }
}

export function quantile(values, q) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** Counts of labels (HTTP statuses, error codes), printed as `202×180, 503×4`. */
export class Tally {
  counts = new Map();
  add(label) {
    this.counts.set(String(label), (this.counts.get(String(label)) ?? 0) + 1);
  }
  get(label) {
    return this.counts.get(String(label)) ?? 0;
  }
  total() {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }
  /** How many labels satisfy `pred`. */
  where(pred) {
    return [...this.counts].filter(([k]) => pred(k)).reduce((a, [, v]) => a + v, 0);
  }
  toString() {
    if (this.counts.size === 0) return '-';
    return [...this.counts].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}×${v}`).join(', ');
  }
}

/**
 * Status labels per route. A 503 answered with `{"error": "queue_unavailable"}` is labelled
 * `503 queue_unavailable` (the designed answer when the queue cannot record a job); any other 5xx
 * counts as unexpected.
 */
export class Statuses {
  routes = new Map();
  add(route, res) {
    if (!this.routes.has(route)) this.routes.set(route, new Tally());
    let label = String(res.status);
    if (res.status === 503 && res.json?.error) label = `503 ${res.json.error}${res.json.error === 'queue_unavailable' && !res.headers?.['retry-after'] ? ' without Retry-After' : ''}`;
    this.routes.get(route).add(label);
  }
  /** 5xx other than the designed `503 queue_unavailable`, over every route but /readyz (whose 503 is its job). */
  unexpected5xx() {
    let n = 0;
    for (const [route, t] of this.routes) {
      if (route.startsWith('GET /readyz')) continue;
      n += t.where((k) => /^5\d\d/.test(k) && !k.startsWith('503 queue_unavailable'));
    }
    return n;
  }
  lines() {
    return [...this.routes].map(([route, t]) => `${route}: ${t}`);
  }
}

/** A label for a failed request: the error code (ECONNREFUSED, UND_ERR_SOCKET, TimeoutError...). */
function errorLabel(err) {
  let e = err;
  for (let i = 0; i < 3 && e; i++) {
    if (typeof e.code === 'string' && e.code !== 'UND_ERR_ABORTED') return e.code;
    if (e.name === 'TimeoutError') return 'TIMEOUT';
    e = e.cause;
  }
  return err?.name ?? 'ERROR';
}

/** An HTTP client (undici) whose calls never throw: failures come back as `{status: 'ECONNRESET'}`. */
export function makeClient({ connections = 32, localAddress } = {}) {
  // undici's connect options drop localAddress: wrap its connector to bind the client's source address.
  const connector = buildConnector({ timeout: 5000 });
  const connect = localAddress ? (options, cb) => connector({ ...options, localAddress }, cb) : connector;
  const dispatcher = new Agent({ connections, keepAliveTimeout: 2000, connect });
  async function call(method, url, { headers = {}, body, token, timeoutMs = 20_000 } = {}) {
    const t0 = performance.now();
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload = body;
    if (body !== undefined && typeof body !== 'string') {
      payload = JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    try {
      const res = await request(url, { method, dispatcher, headers: h, body: payload, signal: AbortSignal.timeout(timeoutMs), headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      const text = await res.body.text();
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.statusCode, json, text, headers: res.headers, ms: performance.now() - t0, at: Date.now() };
    } catch (err) {
      return { status: errorLabel(err), ms: performance.now() - t0, at: Date.now() };
    }
  }
  return { call, close: () => dispatcher.destroy() };
}

/** Client credentials grant; resolves to the response (with `token` set on 200). */
export async function fetchToken(client, url, secret = CLIENT_SECRET, clientId = CLIENT_ID) {
  const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }).toString();
  const res = await client.call('POST', `${url}/api/v1/token`, { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  if (res.status === 200) res.token = res.json.access_token;
  return res;
}

/** An access token from the service at `url` (throws when the token endpoint refuses). */
export async function tokenOf(client, url) {
  const res = await fetchToken(client, url);
  if (!res.token) throw new Error(`POST /api/v1/token answered ${res.status}: ${res.text?.slice(0, 200)}`);
  return res.token;
}

/**
 * The target API the jobs' connection calls: GET /health (test query), GET and DELETE
 * /users?email=<id>@chaos.test (access, delete), each answered after a random delay. Every hit on
 * /users is recorded with its time and the current epoch (the scenario bumps it at each fault).
 */
export async function startTarget({ delayMs = [50, 150], records = 1, recordBytes = 200 } = {}) {
  const hits = new Map();
  let epoch = 0;
  const filler = 'x'.repeat(recordBytes);
  const server = createHttpServer((req, res) => {
    const url = new URL(req.url, 'http://target');
    if (url.pathname === '/health') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    if (url.pathname !== '/users') return res.writeHead(404).end();
    const email = url.searchParams.get('email') ?? '';
    const id = email.split('@')[0];
    if (!hits.has(id)) hits.set(id, []);
    hits.get(id).push({ t: Date.now(), epoch, method: req.method });
    setTimeout(() => {
      const body = req.method === 'GET' ? JSON.stringify(Array.from({ length: records }, (_, i) => ({ n: i, email, filler }))) : '{"deleted":true}';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    }, randomBetween(delayMs[0], delayMs[1]));
    res.on('error', () => undefined);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    hits,
    nextEpoch: () => ++epoch,
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** Write a service config (one connection to `targetUrl`) and its JSONFile secrets into `dir`; returns the config path. */
export function writeServiceConfig(dir, { targetUrl, redisUrl, agent = {} }) {
  writeFileSync(join(dir, 'secrets.json'), JSON.stringify({ api: { client_id: CLIENT_ID, client_secret: CLIENT_SECRET }, target: { token: 'chaos-target-token' } }));
  const q = (path, extra = {}) => ({ url: `${targetUrl}${path}`, verb: 'GET', verify_ssl: 'true', headers: { Authorization: 'Bearer {token}' }, ...extra });
  const config = {
    datagrail_agent_credentials_location: 'api',
    platform: { credentials_manager: { provider: 'JSONFile', options: { filename: 'secrets.json' } } },
    connections: [
      {
        name: 'Chaos Target',
        uuid: CONNECTION_UUID,
        capabilities: ['privacy/access', 'privacy/delete'],
        mode: 'live',
        connector_type: 'APIProxy',
        queries: { test: [q('/health')], access: [q('/users?email={email}')], delete: [q('/users?email={email}', { verb: 'DELETE' })] },
        credentials_location: 'target',
      },
    ],
    ...(redisUrl ? { redis_url: redisUrl } : {}),
    agent: { readiness_interval_seconds: 1, ...agent },
  };
  const path = join(dir, 'config.json');
  writeFileSync(path, JSON.stringify(config));
  return path;
}

/**
 * Spawn `node <cli> serve --config <configPath>` with PORT and DSR_AGENT_DATA_DIR; output is
 * appended to `logFile`. Resolves once /healthz answers (throws with the output's tail if it exits
 * or takes over 30 s).
 */
export async function startService({ cli, configPath, dataDir, logFile, port, logLevel = 'WARNING', wrap = [] }) {
  port ??= await freePort();
  // `wrap`: a command the service runs under (e.g. unshare, to be pid 1 as in a container).
  const argv = [process.execPath, cli, 'serve', '--config', configPath];
  const child = spawn(wrap[0] ?? argv[0], [...wrap.slice(1), ...(wrap.length ? argv : argv.slice(1))], {
    env: { PATH: process.env.PATH, LOGLEVEL: logLevel, PORT: String(port), DSR_AGENT_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (d) => {
    output += d;
    if (output.length > 2_000_000) output = output.slice(-1_000_000);
    if (logFile) appendFileSync(logFile, d);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((r) => child.once('exit', (code, signal) => r(code ?? signal)));
  const url = `http://127.0.0.1:${port}`;
  const svc = {
    url,
    port,
    pid: child.pid,
    output: () => output,
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
    kill9: async () => {
      if (svc.alive()) child.kill('SIGKILL');
      return exited;
    },
    /** SIGTERM, then SIGKILL after `ms`. */
    stop: async (ms = 40_000) => {
      if (!svc.alive()) return exited;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), ms);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  const probe = makeClient({ connections: 1 });
  try {
    const started = Date.now();
    for (;;) {
      if (!svc.alive()) throw new Error(`serve exited (${await exited}):\n${output.slice(-1500)}`);
      if (Date.now() - started > 30_000) {
        await svc.kill9();
        throw new Error(`serve did not answer /healthz within 30 s:\n${output.slice(-1500)}`);
      }
      if ((await probe.call('GET', `${url}/healthz`, { timeoutMs: 1000 })).status === 200) break;
      await sleep(50);
    }
  } finally {
    await probe.close();
  }
  return svc;
}

/** Log lines (pino JSON) at warn level or above whose text matches `re`. */
export function warnings(output, re) {
  return output.split('\n').filter((l) => {
    try {
      const o = JSON.parse(l);
      return ['warn', 'error', 'fatal'].includes(o.level) && re.test(l);
    } catch {
      return false;
    }
  });
}

/**
 * What the client knows of each job: whether it was accepted (a 202 or 200), when it was first seen
 * final and with which status, and its latest GET.
 */
export function makeBook() {
  const jobs = new Map();
  const entry = (id) => {
    if (!jobs.has(id)) jobs.set(id, { id, accepted: false, firstFinal: undefined, firstFinalAt: undefined, last: undefined });
    return jobs.get(id);
  };
  return {
    jobs,
    entry,
    accepted: () => [...jobs.values()].filter((j) => j.accepted),
    /** After a restart the client knows nothing of the jobs' current states: poll them all again. */
    forgetStates() {
      for (const j of jobs.values()) j.last = undefined;
    },
    pending: () => [...jobs.values()].filter((j) => !j.accepted),
    /** Record a POST's answer for `id`. */
    posted(id, res) {
      const j = entry(id);
      if (res.status === 202 || res.status === 200) j.accepted = true;
      if (res.status === 200) this.got(id, res);
      return j;
    },
    /** Record a GET's answer for `id`. */
    got(id, res) {
      const j = entry(id);
      if (typeof res.status !== 'number') return j;
      j.last = res.status === 200 ? res.json?.status : res.status;
      if (res.status === 200 && isFinal(res.json?.status) && j.firstFinal === undefined) {
        j.firstFinal = res.json.status;
        j.firstFinalAt = res.at;
      }
      return j;
    },
  };
}

export const isFinal = (s) => s === 'succeeded' || s === 'partial' || s === 'failed';

/** A job submission for `id` (its identifier names it at the target). */
export const jobBody = (id, type = 'delete') => ({ id, type, identifiers: { email: emailOf(id) } });

/** POST every id in `ids` (at `concurrency`) until `stop()`, recording answers in `book` and `statuses`. */
export async function submitAll({ client, url, token, ids, book, statuses, type, concurrency = 16, timeoutMs, stop = () => false }) {
  for (const id of ids) book.entry(id); // known before it is sent: one never sent stays pending
  await pool(ids, concurrency, async (id) => {
    if (stop()) return;
    const res = await client.call('POST', `${url}/api/v1/jobs`, { token, body: jobBody(id, type), timeoutMs });
    statuses.add('POST /api/v1/jobs', res);
    book.posted(id, res);
  });
}

/**
 * GET every accepted job that is not known final, again and again, until all are final (or 404:
 * forgotten) or `ms` pass. Returns the ids still not final.
 */
export async function pollUntilFinal({ client, url, token, book, statuses, ms, stop = () => false, concurrency = 16, pauseMs = 500 }) {
  const deadline = Date.now() + ms;
  for (;;) {
    const open = book.accepted().filter((j) => !isFinal(j.last) && j.last !== 404);
    if (open.length === 0 || Date.now() >= deadline || stop()) return open.map((j) => j.id);
    await pool(open, concurrency, async (j) => {
      if (stop()) return;
      const res = await client.call('GET', `${url}/api/v1/jobs/${j.id}`, { token, timeoutMs: 15_000 });
      statuses.add('GET /api/v1/jobs/:id', res);
      book.got(j.id, res);
    });
    await sleep(pauseMs);
  }
}

/** One last GET of every accepted job (the state the run ends with). */
export async function finalPass({ client, url, token, book, statuses }) {
  await pool(book.accepted(), 16, async (j) => {
    const res = await client.call('GET', `${url}/api/v1/jobs/${j.id}`, { token, timeoutMs: 15_000 });
    statuses.add('GET /api/v1/jobs/:id', res);
    j.end = res.status === 200 ? res.json?.status : res.status;
    book.got(j.id, res);
  });
}

/**
 * Judge a run from the book (what the client saw), the target's hits and the fault times.
 * - lost: accepted, then 404 at the end (accepted-then-forgotten);
 * - stuck: accepted, still queued/running at the end;
 * - run twice: more than one hit at the target. At-least-once allows it only when a fault lies
 *   between the two runs (a kill, a Redis restart, a service restart); two runs in one process life,
 *   or a run after the client had seen the job final, are violations. A fault is a window
 *   `{from, to}` (from just before the signal to just after the exit was seen): a request the dying
 *   process sent can reach the target a moment after the signal;
 * - flipped: the final status seen at the end differs from the first final status the client saw.
 */
export function assess(book, hits, faults) {
  const r = { accepted: 0, final: 0, lost: 0, stuck: 0, runTwice: 0, runTwiceAllowed: 0, runTwiceViolations: 0, rerunAfterFinal: 0, flipped: 0, finalWithoutRun: 0, lostIds: [], stuckIds: [], violationIds: [] };
  for (const j of book.accepted()) {
    r.accepted++;
    const end = j.end ?? j.last;
    if (end === 404) {
      r.lost++;
      r.lostIds.push(j.id);
    } else if (!isFinal(end)) {
      r.stuck++;
      r.stuckIds.push(j.id);
    } else r.final++;
    if (isFinal(end) && j.firstFinal !== undefined && end !== j.firstFinal) r.flipped++;
    const h = [...(hits.get(j.id) ?? [])].sort((a, b) => a.t - b.t);
    if (isFinal(end) && end === 'succeeded' && h.length === 0) r.finalWithoutRun++;
    const afterFinal = j.firstFinalAt !== undefined && h.some((x) => x.t > j.firstFinalAt);
    if (afterFinal) r.rerunAfterFinal++;
    if (h.length > 1) {
      r.runTwice++;
      const explained = h.slice(1).every((x, i) => faults.some((f) => h[i].t <= f.to && x.t >= f.from));
      if (explained && !afterFinal) r.runTwiceAllowed++;
      else {
        r.runTwiceViolations++;
        r.violationIds.push(j.id);
        r.violations ??= [];
        r.violations.push({ id: j.id, hits: h.map((x) => ({ t: x.t, epoch: x.epoch })), firstFinalAt: j.firstFinalAt, faults: faults.filter((f) => f.to >= h[0].t - 5000 && f.from <= h.at(-1).t + 5000) });
      }
    }
  }
  return r;
}

/** Start a private redis-server on `port` in `dir` with `args`; resolves once it answers PING. */
export async function startRedis({ port, dir, args }) {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no', '--logfile', join(dir, 'redis.log'), ...args], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r(code ?? signal)));
  child.once('error', () => undefined);
  const ok = await waitUntil(async () => child.exitCode === null && (await redisPing(port)), 10_000, 50);
  if (!ok) {
    child.kill('SIGKILL');
    throw new Error(`redis-server on port ${port} did not answer PING within 10 s (see ${join(dir, 'redis.log')})`);
  }
  return {
    pid: child.pid,
    kill9: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}

/** True when Redis on `port` answers +PONG (not -LOADING). */
export function redisPing(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    const done = (v) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      data += d;
      if (data.includes('\r\n')) done(data.startsWith('+PONG'));
    });
  });
}

/** Slack after a process's exit was seen, for requests it sent that the target reads late. */
export const EXIT_SLACK_MS = 100;

/** `n` ms rounded for printing, or '-' when undefined. */
export const fmtMs = (n) => (n === undefined || Number.isNaN(n) ? '-' : `${Math.round(n)} ms`);
