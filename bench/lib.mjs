// Shared helpers for the benchmark scripts: argument parsing, child processes, percentiles, and
// building the agent's engine from the compiled modules in ../dist.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { getHeapSpaceStatistics } from 'node:v8';

export const ROOT = new URL('..', import.meta.url).pathname;
/** The compiled agent; DSR_BENCH_DIST points the bench at another build (for before/after experiments). */
export const DIST = process.env.DSR_BENCH_DIST ?? join(ROOT, 'dist');
export const BENCH = join(ROOT, 'bench');
export const MiB = 1024 * 1024;

/** `--quick`, `--only x`, `--key value`, `--key=value` and `--flag` from argv. */
export function parseArgs(argv = process.argv.slice(2)) {
  const out = { quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    const k = eq < 0 ? a.slice(2) : a.slice(2, eq);
    if (eq >= 0) out[k] = a.slice(eq + 1);
    else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) out[k] = argv[++i];
    else out[k] = true;
  }
  return out;
}

/** The q-quantile (0..1) of an array of numbers (sorted in place), nearest rank. */
export function quantile(values, q) {
  if (values.length === 0) return NaN;
  values.sort((a, b) => a - b);
  const i = Math.min(values.length - 1, Math.max(0, Math.ceil(q * values.length) - 1));
  return values[i];
}

export const round = (x, digits = 2) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);

/**
 * Start a node script as a child process and resolve with the first JSON line it prints on stdout
 * (the "ready" message, e.g. `{"port": 1234}`). Later stdout lines go to `onLine`. stderr is passed through.
 */
export function startChild(script, args = [], { env, nodeArgs = [], onLine } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  const lines = createInterface({ input: child.stdout });
  const ready = new Promise((resolve, reject) => {
    let first = true;
    lines.on('line', (line) => {
      if (first) {
        first = false;
        try {
          resolve(JSON.parse(line));
        } catch {
          reject(new Error(`${script} printed ${JSON.stringify(line.slice(0, 200))} instead of its ready line`));
        }
      } else onLine?.(line);
    });
    child.once('exit', (code, signal) => first && reject(new Error(`${script} exited (${code ?? signal}) before it was ready`)));
    child.once('error', reject);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    ready,
    exited,
    /** SIGTERM this child (by pid) and wait for it to exit; SIGKILL after `ms`. */
    async stop(ms = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), ms);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Run a node script to completion; resolve with the last JSON line it printed on stdout. */
export function runChildJson(script, args = [], { env, nodeArgs = [] } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`${script} ${args.join(' ')} exited with ${code ?? signal}`));
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`${script} did not print a JSON result (got ${JSON.stringify(last.slice(0, 200))})`));
      }
    });
  });
}

/** Start bench/target.mjs (the target API) in its own process; resolves with `{ url, stop }`. */
export async function startTarget() {
  const t = startChild(join(BENCH, 'target.mjs'));
  const { port } = await t.ready;
  return { url: `http://127.0.0.1:${port}`, stop: () => t.stop(), pid: t.child.pid };
}

/**
 * An access connection with the given access queries, using secret key `api_key`. Each query is a
 * URL (template), or `{ url, headers, ...fields }` whose headers are added to the defaults and whose
 * other fields (records, expect, paginate, ...) are set on the query. `tokens` sets the connection's
 * `tokens` (see loginToken).
 */
export function accessConnection(i, urls, base, { tokens } = {}) {
  return {
    name: `bench-${String(i).padStart(2, '0')}`,
    uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    capabilities: ['privacy/access', 'privacy/delete'],
    mode: 'live',
    connector_type: 'APIProxy',
    ...(tokens ? { tokens } : {}),
    queries: {
      test: [{ url: `${base}/small`, verb: 'GET', verify_ssl: 'true', valid_response_codes: [200] }],
      access: urls.map((q) => {
        const { url, headers, ...fields } = typeof q === 'string' ? { url: q } : q;
        return {
          url,
          headers: { Authorization: 'Bearer {api_key}', 'Content-Type': 'application/json', ...headers },
          verb: 'GET',
          verify_ssl: 'true',
          valid_response_codes: [200],
          fail_retry_response_codes: [503],
          ...fields,
        };
      }),
      delete: [
        {
          url: `${base}/delay/5`,
          headers: { Authorization: 'Bearer {api_key}', 'Content-Type': 'application/json' },
          body: '{{"email": "{email}"}}',
          verb: 'DELETE',
          verify_ssl: 'true',
          valid_response_codes: [200, 404],
        },
      ],
    },
    credentials_location: 'bench-target',
  };
}

/**
 * A connection token (connection field `tokens`) that logs in with `POST url` (the secret's
 * `api_key` in a JSON body) and reads `{"access_token": "...", "expires_in": 3600}`, as the
 * target's `/login` answers. It needs no identifier, so the engine shares it across jobs.
 */
export function loginToken(url, { value = '/access_token', expires_in = '/expires_in' } = {}) {
  return {
    request: {
      url,
      verb: 'POST',
      verify_ssl: 'true',
      headers: { 'Content-Type': 'application/json' },
      body: '{{"api_key": "{api_key}"}}',
      valid_response_codes: [200],
      fail_retry_response_codes: [503],
    },
    value,
    expires_in,
  };
}

/** Secrets every bench config uses (a JSONFile). */
export const BENCH_SECRETS = {
  'bench-target': { api_key: 'bench-api-key' },
  'bench-client': { client_id: 'bench', client_secret: 'bench-client-secret-0123456789' },
};

/**
 * A database connection (connector_type `Postgres`, `MySQL`, `Redshift`) with the given access
 * statements (SQL with pyformat placeholders such as `%(email)s`); its secret is at `credentials_location`.
 */
export function databaseConnection(i, type, access, credentialsLocation) {
  return {
    name: `bench-${type.toLowerCase()}-${String(i).padStart(2, '0')}`,
    uuid: `00000000-0000-4000-9000-${String(i).padStart(12, '0')}`,
    capabilities: ['privacy/access'],
    mode: 'live',
    connector_type: type,
    queries: { access },
    credentials_location: credentialsLocation,
  };
}

/**
 * Write a config and its JSONFile secrets (BENCH_SECRETS plus `secrets`, name → secret) to a new
 * temp folder; returns { dir, file, cleanup }.
 */
export function writeConfigDir(config, secrets = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'dsr-bench-'));
  writeFileSync(join(dir, 'secrets.json'), JSON.stringify({ ...BENCH_SECRETS, ...secrets }));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return { dir, file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A raw config (before validation) with JSONFile secrets in `secrets.json` next to it. */
export function benchConfig(connections, extra = {}) {
  return {
    platform: { credentials_manager: { provider: 'JSONFile', options: { filename: 'secrets.json' } } },
    job_timeout_seconds: 300,
    connections,
    ...extra,
  };
}

/**
 * Build the agent's engine from ../dist, as the CLI and the service do: validated frozen config,
 * JSONFile secrets behind the TTL cache, pino at ERROR. `dist` picks another build (default DIST);
 * `secrets` (name → secret) are added to BENCH_SECRETS. Returns { engine, config, cleanup }.
 */
export async function makeBenchEngine(rawConfig, { dispatcher, hooks, dist = DIST, secrets: extraSecrets } = {}) {
  const { validateConfig } = await import(join(dist, 'config/validate.js'));
  const { makeSecretsSource, makeSecretsCache } = await import(join(dist, 'credentials/index.js'));
  const { makeLogger } = await import(join(dist, 'logger.js'));
  const { makeEngine } = await import(join(dist, 'engine/index.js'));
  const dir = writeConfigDir(rawConfig, extraSecrets);
  const config = validateConfig(rawConfig);
  const secrets = makeSecretsCache(makeSecretsSource(config.platform.credentials_manager, dir.dir), { ttlMs: 300_000 });
  const logger = makeLogger({ level: 'ERROR' });
  const engine = makeEngine({ config, secrets, logger, dispatcher, hooks });
  return {
    engine,
    config,
    async cleanup() {
      await engine.close();
      dir.cleanup();
    },
  };
}

/**
 * A report sink that counts and discards: the CSV text is produced by the engine as always, but
 * not stored, so storage speed does not blur the agent's own cost.
 */
export function makeCountingSink() {
  const sink = {
    reports: 0,
    csvChars: 0,
    async put(uuid, n, csv) {
      sink.reports++;
      sink.csvChars += csv.length;
      return `discard://${uuid}/report_${n}.csv`;
    },
  };
  return sink;
}

/**
 * The node flags the container starts the agent with (between "node" and "dist/cli.js" in the
 * Dockerfile's ENTRYPOINT), so a bench measures the agent process as it runs in production.
 */
export function productionNodeFlags() {
  try {
    const line = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split('\n').find((l) => l.startsWith('ENTRYPOINT'));
    const argv = JSON.parse(line.slice('ENTRYPOINT'.length));
    return argv.slice(1, argv.indexOf('dist/cli.js')).filter((a) => a.startsWith('--'));
  } catch {
    return [];
  }
}

/** The agent's node flags for a case: `--agent-node-flags="..."` when given, else the Dockerfile's. */
export function agentNodeFlags(args) {
  return typeof args['agent-node-flags'] === 'string' ? args['agent-node-flags'].split(' ').filter(Boolean) : productionNodeFlags();
}

/**
 * Where an agent process's memory is: process.memoryUsage() and V8's space sizes, sampled every
 * 20 ms; `stop()` returns the snapshot taken when RSS was highest (in MiB), which says which part grew.
 */
export function startMemorySampler(everyMs = 20) {
  const SPACES = ['new_space', 'old_space', 'large_object_space', 'new_large_object_space', 'code_space'];
  let peak = { rss: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    if (m.rss < peak.rss) return;
    for (const s of getHeapSpaceStatistics()) if (SPACES.includes(s.space_name)) m[s.space_name] = s.space_size;
    peak = m;
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Number((v / MiB).toFixed(1))]));
    },
  };
}

/** The peak resident set of this process over its whole life, in MiB (maxRSS is in KiB). */
export const peakRssMiB = () => Number((process.resourceUsage().maxRSS / 1024).toFixed(1));

/** Print the result object as the one JSON line a case's parent reads. */
export function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/**
 * The goals the benchmarks are held to (issues 4 and 11), in one place: id → the goal as printed,
 * and its test. run.mjs prints each figure with its goal and whether it was met, and lists the
 * missed ones in history.jsonl. An id is `<case>.<key>` when it names one key of latest.json.
 */
export const GOALS = {
  'engine.ratio': { text: '>= 0.9', test: (v) => v >= 0.9 },
  'engine.empty_ratio': { text: '>= 0.9', test: (v) => v >= 0.9 },
  'engine.slow_ratio': { text: '>= 0.9', test: (v) => v >= 0.9 },
  'engine.baseline_ratio': { text: '>= 0.8', test: (v) => v >= 0.8 },
  'flatten.ratio_rounds': { text: '<= 1.5', test: (v) => v <= 1.5 },
  'memory.peak_rss_mib': { text: '<= 256', test: (v) => v <= 256 },
  'memory.peak_rss_mib_1gib': { text: '<= 256', test: (v) => v <= 256 },
  'memory.peak_rss_mib_1gib_noflags': { text: '<= 256', test: (v) => v <= 256 },
  'memory.ratio_to_json_parse': { text: '>= 0.5', test: (v) => v >= 0.5 },
  'memory.growth_mib': { text: 'flat (<= 32)', test: (v) => v <= 32 },
  'service.latency_scaling_2': { text: '>= 1.8', test: (v) => v >= 1.8 },
  'service.latency_scaling_4': { text: '>= 3.2', test: (v) => v >= 3.2 },
  'service.machine_cpu_pct': { text: '< 70', test: (v) => v < 70 },
  'envelope.throughput_ratio': { text: '>= 0.9', test: (v) => v >= 0.9 },
};

/** Whether `value` meets goal `id`: true, false, or undefined when there is no figure to judge. */
export function meetsGoal(id, value) {
  if (typeof value !== 'number' || Number.isNaN(value)) return undefined;
  return GOALS[id].test(value);
}
