#!/usr/bin/env node
// `npm run bench [-- --quick] [-- --only engine,flatten,memory,service,envelope,sql]`: run each case in its own
// process (clean heap, no JIT or GC state carried between cases), print a table of every figure with
// its goal and whether it was met, and write bench/results/latest.json. A full run (all cases, not
// --quick, no --out) also appends one line to bench/results/history.jsonl (date, commit, key figures)
// so a regression shows. docs/PERFORMANCE.md explains the cases and the figures.
// For experiments: --out FILE writes elsewhere; --agent-node-flags="..." goes to the memory, envelope and sql cases;
// DSR_BENCH_DIST=/path/to/other/dist measures another build.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { BENCH, GOALS, ROOT, meetsGoal, parseArgs, runChildJson } from './lib.mjs';

const CASES = ['engine', 'flatten', 'memory', 'service', 'envelope', 'sql'];
// A case is one script, or several whose results are merged (service: throughput, scaling, memory).
const SCRIPTS = { service: ['service.mjs', 'service-scaling.mjs', 'service-rss.mjs'] };
const args = parseArgs();
const only = args.only ? String(args.only).split(',') : CASES;
for (const c of only) {
  if (!CASES.includes(c)) {
    console.error(`unknown case '${c}': use --only with one or more of ${CASES.join(', ')} (comma-separated)`);
    process.exit(2);
  }
}
const quick = Boolean(args.quick);
const caseArgs = quick ? ['--quick'] : [];
// --quick must finish in under a minute on 2 cores with the build: these cases get smaller inputs
// than their own --quick defaults (a smoke run; their figures at these sizes are not the goals').
const quickArgs = { memory: ['--sizes', '16,32'], envelope: ['--mib', '32'], sql: ['--rows', '50000'] };
const agentFlags = typeof args['agent-node-flags'] === 'string' ? [`--agent-node-flags=${args['agent-node-flags']}`] : [];
const extraArgs = { memory: agentFlags, envelope: agentFlags, sql: agentFlags };
// flatten holds a large body, its text and its parse at once: give it room whatever the machine's default.
const nodeArgs = { flatten: ['--expose-gc', '--max-old-space-size=4096'] };

const started = Date.now();
const loadAtStart = Number(loadavg()[0].toFixed(2));
process.stderr.write(`bench: load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (1, 5, 15 min) on ${cpus().length} CPUs\n`);
const results = {};
const failures = {};
for (const name of only) {
  for (const script of SCRIPTS[name] ?? [`${name}.mjs`]) {
    const t0 = Date.now();
    process.stderr.write(`bench: ${script.replace('.mjs', '')}${quick ? ' (quick)' : ''}...`);
    try {
      const r = await runChildJson(join(BENCH, script), [...caseArgs, ...((quick && quickArgs[name]) || []), ...(extraArgs[name] ?? [])], { nodeArgs: nodeArgs[name] ?? [] });
      results[name] = { ...results[name], ...r };
      process.stderr.write(` ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    } catch (err) {
      failures[name] = [failures[name], err.message].filter(Boolean).join('; ');
      process.stderr.write(` failed: ${err.message}\n`);
    }
  }
}

// The keys the issues ask for, null when a case did not run or could not measure them.
const pick = (o, keys) => Object.fromEntries(keys.map((k) => [k, o?.[k] ?? null]));
const REQUIRED = {
  engine: ['agent_rps', 'raw_rps', 'ratio', 'p50_added_ms', 'p99_added_ms', 'empty_ratio', 'baseline_ratio'],
  flatten: ['mb_per_s', 'ratio_to_json_parse', 'ratio_rounds'],
  memory: ['peak_rss_mib_100mib', 'peak_rss_mib_1gib', 'mb_per_s_1gib', 'peak_rss_mib_1gib_noflags'],
  service: [
    'embedded_jobs_per_s', 'accept_p99_ms', 'redis_1_jobs_per_s', 'redis_2_jobs_per_s', 'redis_scaling',
    'latency_scaling_2', 'latency_scaling_4', 'queue_latency_p99_ms', 'idle_rss_mib', 'rss_mib_10k_queued',
  ],
  envelope: ['envelope_mb_per_s', 'bare_mb_per_s', 'throughput_ratio', 'envelope_peak_rss_mib', 'bare_peak_rss_mib', 'pages', 'records', 'logins'],
  sql: ['agent_rows_per_s', 'raw_rows_per_s', 'ratio', 'baseline_rows_per_s', 'baseline_ratio', 'agent_peak_rss_mib', 'raw_peak_rss_mib', 'rows'],
};
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
} catch {
  // not a git checkout
}
const meta = {
  date: new Date().toISOString(),
  commit,
  node: process.version,
  cpus: cpus().length,
  cpu_model: cpus()[0]?.model ?? 'unknown',
  memory_gib: Math.round(totalmem() / 2 ** 30),
  load_avg_1m_at_start: loadAtStart,
  load_avg_1m_at_end: Number(loadavg()[0].toFixed(2)),
  quick,
  ...(process.env.DSR_BENCH_DIST ? { dist: process.env.DSR_BENCH_DIST } : {}),
  duration_s: Math.round((Date.now() - started) / 1000),
};

// --only updates its cases in the existing file and keeps the others (each case says when it ran).
const file = typeof args.out === 'string' ? args.out : join(BENCH, 'results', 'latest.json');
let doc = {};
if (only.length < CASES.length && existsSync(file)) {
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    doc = {};
  }
}
for (const name of only) {
  doc[name] = { ...pick(results[name], REQUIRED[name]), ...results[name], run: { date: meta.date, quick, commit } };
  if (failures[name]) doc[name].error = failures[name];
}
doc = { meta: { ...meta, cases: only }, ...Object.fromEntries(CASES.filter((c) => doc[c]).map((c) => [c, doc[c]])) };
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);

// The table: case | metric | value | goal | ok. A row with a goal id shows that goal and checks it.
const rows = [];
const row = (c, metric, value, goalId) => {
  const shown = value === null || value === undefined || Number.isNaN(value) ? 'n/a' : String(value);
  const goal = goalId ? GOALS[goalId] : undefined;
  const ok = goal ? meetsGoal(goalId, value) : undefined;
  rows.push([c, metric, shown, goal?.text ?? '', ok === undefined ? '' : ok ? 'met' : 'MISSED']);
};
const pair = (a, b) => `${a ?? 'n/a'} / ${b ?? 'n/a'}`;
const e = results.engine;
if (e) {
  row('engine', `agent req/s (${e.queries} queries, ${e.in_flight} in flight)`, e.agent_rps);
  row('engine', 'raw undici req/s (same requests)', e.raw_rps);
  row('engine', 'ratio agent/raw', e.ratio, 'engine.ratio');
  row('engine', 'p50 / p99 added per request (ms)', pair(e.p50_added_ms, e.p99_added_ms));
  row('engine', 'CPU per request agent / raw (µs)', pair(e.agent_cpu_us_per_req, e.raw_cpu_us_per_req));
  row('engine', 'baseline req/s (undici + JSON.parse + flatten + 1 write/report)', e.baseline_rps);
  row('engine', 'ratio agent/baseline, median of paired rounds', e.baseline_ratio, 'engine.baseline_ratio');
  row('engine', 'ratio agent/baseline, best of each', e.baseline_ratio_best);
  row('engine', 'CPU per request, baseline (µs)', e.baseline_cpu_us_per_req);
  row('engine', `ratio, [] bodies (request path only, ${e.in_flight} in flight)`, e.empty_ratio, 'engine.empty_ratio');
  row('engine', 'CPU per request, [] bodies, agent / raw (µs)', pair(e.empty_agent_cpu_us_per_req, e.empty_raw_cpu_us_per_req));
  row('engine', 'ratio, target answering in 10 ms', e.slow_ratio, 'engine.slow_ratio');
  row('engine', `ratio, ${e.jobs_in_flight} one-query jobs in flight`, e.jobs_ratio);
  row('engine', 'idle p50 / p99 added (ms)', pair(e.idle_p50_added_ms, e.idle_p99_added_ms));
}
const f = results.flatten;
if (f) {
  row('flatten', `agent MB/s (${f.mb} MB, ${f.objects} objects)`, f.mb_per_s);
  row('flatten', 'JSON.parse MB/s (decode + parse)', f.json_parse_mb_per_s);
  row('flatten', 'agent time / JSON.parse time, best of each', f.ratio_to_json_parse);
  row('flatten', `agent / JSON.parse, median of ${f.rounds} paired rounds`, f.ratio_rounds, 'flatten.ratio_rounds');
  row('flatten', 'its spread: min – max (IQR)', f.ratio_rounds_min === undefined ? null : `${f.ratio_rounds_min} – ${f.ratio_rounds_max} (${f.ratio_rounds_iqr?.join(' – ')})`);
  row('flatten', 'the same from CPU time, median (min – max)', f.cpu_ratio_rounds === undefined ? null : `${f.cpu_ratio_rounds} (${f.cpu_ratio_rounds_min} – ${f.cpu_ratio_rounds_max})`);
}
const m = results.memory;
if (m) {
  const sizes = Object.keys(m).filter((k) => /^peak_rss_mib_\d+[mg]ib$/.test(k)).map((k) => k.slice('peak_rss_mib_'.length));
  const label = (s) => s.replace('mib', ' MiB').replace('gib', ' GiB');
  for (const s of sizes) {
    row('memory', `peak RSS (MiB), ${label(s)} response`, m[`peak_rss_mib_${s}`], 'memory.peak_rss_mib');
    if (m[`mb_per_s_${s}`] !== undefined) row('memory', `MB/s, ${label(s)} response`, m[`mb_per_s_${s}`]);
    if (m[`ratio_to_json_parse_${s}`] !== undefined) row('memory', `MB/s / JSON.parse's MB/s, ${label(s)}`, m[`ratio_to_json_parse_${s}`], 'memory.ratio_to_json_parse');
  }
  if (m.peak_rss_mib_1gib_noflags !== undefined) row('memory', 'peak RSS (MiB), 1 GiB, CLI without node flags', m.peak_rss_mib_1gib_noflags, 'memory.peak_rss_mib');
  const growth = m.growth_mib ?? (sizes.length >= 2 ? Number((m[`peak_rss_mib_${sizes.at(-1)}`] - m[`peak_rss_mib_${sizes[0]}`]).toFixed(1)) : undefined);
  if (growth !== undefined) row('memory', `peak growth ${label(sizes[0])} → ${label(sizes.at(-1))} (MiB)`, growth, 'memory.growth_mib');
}
const s = results.service;
if (s) {
  if (s.skipped_embedded) row('service', 'embedded', `skipped (${s.skipped_embedded})`);
  else if (s.embedded_jobs_per_s !== undefined) {
    row('service', `embedded jobs/s (${s.jobs} jobs, limit ${s.limit_jobs_per_s_per_process}/s)`, s.embedded_jobs_per_s);
    row('service', 'embedded p50 / p99 time to accept (ms)', pair(s.accept_p50_ms, s.accept_p99_ms));
  }
  if (s.skipped_redis) row('service', 'redis', `skipped (${s.skipped_redis})`);
  else if (s.redis_1_jobs_per_s !== undefined) {
    row('service', 'redis jobs/s, 1 process', s.redis_1_jobs_per_s);
    row('service', 'redis jobs/s, 2 processes', s.redis_2_jobs_per_s);
    row('service', 'redis scaling 2/1 (CPU-bound: 5 ms target)', s.redis_scaling);
  }
  if (s.skipped_latency) row('service', 'latency-bound scaling', `skipped (${s.skipped_latency})`);
  else if (s.latency_target_ms !== undefined) {
    const what = `${s.latency_target_ms} ms target, job_concurrency ${s.latency_job_concurrency}`;
    for (const r of [1, 2, 4]) {
      if (s[`latency_jobs_per_s_${r}`] === undefined) continue;
      row('service', `redis jobs/s, ${r} replica(s), ${what} (limit ${s[`latency_limit_jobs_per_s_${r}`]})`, s[`latency_jobs_per_s_${r}`]);
      row('service', `  machine CPU % during it (bench processes: ${s[`latency_bench_cores_busy_${r}`]} cores)`, s[`latency_machine_cpu_pct_${r}`], 'service.machine_cpu_pct');
    }
    row('service', 'latency-bound scaling 1 → 2 replicas', s.latency_scaling_2, 'service.latency_scaling_2');
    row('service', 'latency-bound scaling 1 → 4 replicas', s.latency_scaling_4, 'service.latency_scaling_4');
    const at = `${s.latency_replicas_for_latency} replicas at ${Math.round(s.latency_paced_load * 100)} % of their jobs/s`;
    row('service', `queue latency p50 / p99 (ms), accepted → started, ${at}`, pair(s.queue_latency_p50_ms, s.queue_latency_p99_ms));
    row('service', `time to first byte p50 / p99 (ms), POST → target, ${at}`, pair(s.ttfb_p50_ms, s.ttfb_p99_ms));
  }
  for (const q of ['embedded', 'redis']) {
    if (s[`skipped_rss_${q}`]) row('service', `RSS, ${q}`, `skipped (${s[`skipped_rss_${q}`]})`);
    else if (s[`idle_rss_mib_${q}`] !== undefined) {
      const n = s.rss_queued_jobs.toLocaleString('en-US');
      row('service', `RSS (MiB) after a full GC, idle replica / ${n} jobs queued, ${q}`, pair(s[`idle_rss_mib_${q}`], s[`queued_rss_mib_${q}`]));
      row('service', `  the same before the GC (as found), ${q}`, pair(s[`idle_rss_mib_before_gc_${q}`], s[`queued_rss_mib_before_gc_${q}`]));
      row('service', `  per queued job (KiB): RSS / V8 heap in use, ${q}`, pair(s[`rss_kib_per_queued_job_${q}`], s[`heap_kib_per_queued_job_${q}`]));
      if (q === 'redis') row('service', '  per queued job in redis-server, its queue keys (KiB)', s.redis_kib_per_queued_job_redis);
    }
  }
}
const env = results.envelope;
if (env) {
  const size = env.mib % 1024 === 0 ? `${env.mib / 1024} GiB` : `${env.mib} MiB`;
  row('envelope', `bare array MB/s (${size}, ${env.records} records)`, env.bare_mb_per_s);
  row('envelope', `enveloped MB/s (${env.pages} pages of ${env.page_size}, ${env.logins} login)`, env.envelope_mb_per_s);
  row('envelope', 'throughput enveloped/bare', env.throughput_ratio, 'envelope.throughput_ratio');
  row('envelope', 'peak RSS (MiB), enveloped', env.envelope_peak_rss_mib, 'memory.peak_rss_mib');
  row('envelope', 'peak RSS (MiB), bare', env.bare_peak_rss_mib);
  row('envelope', `heap held by the job's ${env.records} report locations (MiB)`, env.report_list_mib);
}
const q = results.sql;
if (q) {
  if (q.skipped) row('sql', 'PostgreSQL', `skipped (${q.skipped})`);
  else {
    row('sql', `agent rows/s (${q.rows.toLocaleString('en-US')} rows, one report each)`, q.agent_rows_per_s);
    row('sql', 'raw pg-cursor rows/s (same rows, batches of 1000)', q.raw_rows_per_s);
    row('sql', 'ratio agent/raw', q.ratio);
    row('sql', 'baseline ratio agent/(raw + JSON.stringify)', q.baseline_ratio);
    row('sql', 'CPU per row agent / raw / baseline (µs)', `${q.agent_cpu_us_per_row} / ${q.raw_cpu_us_per_row} / ${q.baseline_cpu_us_per_row}`);
    row('sql', 'peak RSS (MiB), agent', q.agent_peak_rss_mib, 'memory.peak_rss_mib');
    row('sql', 'peak RSS (MiB), raw', q.raw_peak_rss_mib);
    row('sql', `heap held by the job's ${q.rows} report locations (MiB)`, q.report_list_mib);
  }
}
for (const [name, msg] of Object.entries(failures)) row(name, 'failed', msg);

// history.jsonl: one line per full run, so a regression is one `tail` away.
const historyFile = join(BENCH, 'results', 'history.jsonl');
const full = !quick && only.length === CASES.length && typeof args.out !== 'string';
if (full) {
  const figures = {};
  for (const [c, keys] of Object.entries(REQUIRED)) for (const k of keys) figures[`${c}.${k}`] = doc[c]?.[k] ?? null;
  // Every goal the table judged: how many were met, and the rows that missed (case: metric).
  const judged = rows.filter((r) => r[4]);
  const goals_met = `${judged.filter((r) => r[4] === 'met').length} of ${judged.length}`;
  const missed = judged.filter((r) => r[4] === 'MISSED').map((r) => `${r[0]}: ${r[1].trim()}`);
  const line = { date: meta.date, commit, node: meta.node, cpus: meta.cpus, load_avg_1m_at_start: meta.load_avg_1m_at_start, load_avg_1m_at_end: meta.load_avg_1m_at_end, duration_s: meta.duration_s, figures, goals_met, missed };
  appendFileSync(historyFile, `${JSON.stringify(line)}\n`);
}

const header = ['case', 'metric', 'value', 'goal', 'ok'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join(' | ').trimEnd();
console.log(`\ndsr-agent bench — ${meta.date}, commit ${commit}, Node ${meta.node}, ${meta.cpus} CPUs (${meta.cpu_model})${quick ? ', --quick' : ''}`);
console.log(`load average (1 min) ${meta.load_avg_1m_at_start} at the start, ${meta.load_avg_1m_at_end} at the end: above ${meta.cpus} means other processes shared the cores\n`);
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
for (const r of rows) console.log(line(r));
const checked = rows.filter((r) => r[4]);
console.log(`\n${checked.filter((r) => r[4] === 'met').length} of ${checked.length} goals met`);
console.log(`wrote ${file}${full ? ` and a line of ${historyFile}` : ''} (${meta.duration_s} s)`);
process.exit(Object.keys(failures).length ? 1 : 0);
