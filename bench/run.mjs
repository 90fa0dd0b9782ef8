#!/usr/bin/env node
// `npm run bench [-- --quick] [-- --only engine,flatten,memory,service,envelope,sql]`: run each case in its own
// process (clean heap, no JIT or GC state carried between cases), print a table, and write
// bench/results/latest.json. docs/PERFORMANCE.md explains the cases and the figures.
// For experiments: --out FILE writes elsewhere; --agent-node-flags="..." goes to the memory, envelope and sql cases;
// DSR_BENCH_DIST=/path/to/other/dist measures another build.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { BENCH, parseArgs, runChildJson } from './lib.mjs';

const CASES = ['engine', 'flatten', 'memory', 'service', 'envelope', 'sql'];
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
const agentFlags = typeof args['agent-node-flags'] === 'string' ? [`--agent-node-flags=${args['agent-node-flags']}`] : [];
const extraArgs = { memory: agentFlags, envelope: agentFlags, sql: agentFlags };
// flatten holds a 200 MB body, its text and its parse at once: give it room whatever the machine's default.
const nodeArgs = { flatten: ['--expose-gc', '--max-old-space-size=4096'] };

const started = Date.now();
const results = {};
const failures = {};
for (const name of only) {
  const t0 = Date.now();
  process.stderr.write(`bench: ${name}${quick ? ' (quick)' : ''}...`);
  try {
    results[name] = await runChildJson(join(BENCH, `${name}.mjs`), [...caseArgs, ...(extraArgs[name] ?? [])], { nodeArgs: nodeArgs[name] ?? [] });
    process.stderr.write(` ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  } catch (err) {
    failures[name] = err.message;
    process.stderr.write(` failed: ${err.message}\n`);
  }
}

// The keys the issue asks for, null when a case did not run or could not measure them.
const pick = (o, keys) => Object.fromEntries(keys.map((k) => [k, o?.[k] ?? null]));
const REQUIRED = {
  engine: ['agent_rps', 'raw_rps', 'ratio', 'p50_added_ms', 'p99_added_ms'],
  flatten: ['mb_per_s', 'ratio_to_json_parse'],
  memory: ['peak_rss_mib_100mib', 'peak_rss_mib_1gib'],
  service: ['embedded_jobs_per_s', 'accept_p99_ms', 'redis_1_jobs_per_s', 'redis_2_jobs_per_s', 'redis_scaling'],
  envelope: ['envelope_mb_per_s', 'bare_mb_per_s', 'throughput_ratio', 'envelope_peak_rss_mib', 'bare_peak_rss_mib', 'pages', 'records', 'logins'],
  sql: ['agent_rows_per_s', 'raw_rows_per_s', 'ratio', 'baseline_rows_per_s', 'baseline_ratio', 'agent_peak_rss_mib', 'raw_peak_rss_mib', 'rows'],
};
const meta = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  cpu_model: cpus()[0]?.model ?? 'unknown',
  memory_gib: Math.round(totalmem() / 2 ** 30),
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
  doc[name] = { ...pick(results[name], REQUIRED[name]), ...results[name], run: { date: meta.date, quick } };
  if (failures[name]) doc[name].error = failures[name];
}
doc = { meta: { ...meta, cases: only }, ...Object.fromEntries(CASES.filter((c) => doc[c]).map((c) => [c, doc[c]])) };
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);

// The table: case | metric | value | goal | ok.
const rows = [];
const row = (c, metric, value, goal = '', ok = '') => rows.push([c, metric, value === null || value === undefined ? 'n/a' : String(value), goal, ok]);
const check = (value, test) => (value === null || value === undefined ? '' : test(value) ? 'yes' : 'NO');
const e = results.engine;
if (e) {
  row('engine', `agent req/s (${e.queries} queries, ${e.in_flight} in flight)`, e.agent_rps);
  row('engine', 'raw undici req/s (same requests)', e.raw_rps);
  row('engine', 'ratio agent/raw', e.ratio, '>= 0.9', check(e.ratio, (v) => v >= 0.9));
  row('engine', 'p50 / p99 added per request (ms)', `${e.p50_added_ms} / ${e.p99_added_ms}`);
  row('engine', 'CPU per request agent / raw (µs)', `${e.agent_cpu_us_per_req} / ${e.raw_cpu_us_per_req}`);
  row('engine', 'ratio, [] bodies (request path only)', e.empty_ratio);
  row('engine', 'ratio, target answering in 10 ms', e.slow_ratio, '>= 0.9', check(e.slow_ratio, (v) => v >= 0.9));
  row('engine', `ratio, ${e.jobs_in_flight} one-query jobs in flight`, e.jobs_ratio);
  row('engine', 'idle p50 / p99 added (ms)', `${e.idle_p50_added_ms} / ${e.idle_p99_added_ms}`);
}
const f = results.flatten;
if (f) {
  row('flatten', `agent MB/s (${f.mb} MB, ${f.objects} objects)`, f.mb_per_s);
  row('flatten', 'JSON.parse MB/s (decode + parse)', f.json_parse_mb_per_s);
  row('flatten', 'agent time / JSON.parse time', f.ratio_to_json_parse, '<= 2', check(f.ratio_to_json_parse, (v) => v <= 2));
}
const m = results.memory;
if (m) {
  const sizes = Object.keys(m).filter((k) => k.startsWith('peak_rss_mib_')).map((k) => k.slice('peak_rss_mib_'.length));
  const label = (s) => s.replace('mib', ' MiB').replace('gib', ' GiB');
  for (const s of sizes) row('memory', `peak RSS (MiB), ${label(s)} response`, m[`peak_rss_mib_${s}`], '<= 256', check(m[`peak_rss_mib_${s}`], (v) => v <= 256));
  if (sizes.length >= 2) {
    const growth = m[`peak_rss_mib_${sizes.at(-1)}`] - m[`peak_rss_mib_${sizes[0]}`];
    row('memory', `peak growth ${label(sizes[0])} → ${label(sizes.at(-1))} (MiB)`, Number(growth.toFixed(1)), 'flat (<= 32)', check(growth, (v) => v <= 32));
  }
}
const s = results.service;
if (s) {
  if (s.skipped_embedded) row('service', 'embedded', `skipped (${s.skipped_embedded})`);
  else {
    row('service', `embedded jobs/s (${s.jobs} jobs, limit ${s.limit_jobs_per_s_per_process}/s)`, s.embedded_jobs_per_s);
    row('service', 'embedded p50 / p99 time to accept (ms)', `${s.accept_p50_ms} / ${s.accept_p99_ms}`);
  }
  if (s.skipped_redis) row('service', 'redis', `skipped (${s.skipped_redis})`);
  else {
    row('service', 'redis jobs/s, 1 process', s.redis_1_jobs_per_s);
    row('service', 'redis jobs/s, 2 processes', s.redis_2_jobs_per_s);
    row('service', 'redis scaling 2/1', s.redis_scaling);
  }
}
const env = results.envelope;
if (env) {
  const size = env.mib % 1024 === 0 ? `${env.mib / 1024} GiB` : `${env.mib} MiB`;
  row('envelope', `bare array MB/s (${size}, ${env.records} records)`, env.bare_mb_per_s);
  row('envelope', `enveloped MB/s (${env.pages} pages of ${env.page_size}, ${env.logins} login)`, env.envelope_mb_per_s);
  row('envelope', 'throughput enveloped/bare', env.throughput_ratio, '>= 0.9', check(env.throughput_ratio, (x) => x >= 0.9));
  row('envelope', 'peak RSS (MiB), enveloped', env.envelope_peak_rss_mib, '<= 256', check(env.envelope_peak_rss_mib, (x) => x <= 256));
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
    row('sql', 'peak RSS (MiB), agent', q.agent_peak_rss_mib, '<= 256', check(q.agent_peak_rss_mib, (x) => x <= 256));
    row('sql', 'peak RSS (MiB), raw', q.raw_peak_rss_mib);
    row('sql', `heap held by the job's ${q.rows} report locations (MiB)`, q.report_list_mib);
  }
}
for (const [name, msg] of Object.entries(failures)) row(name, 'failed', msg);

const header = ['case', 'metric', 'value', 'goal', 'ok'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join(' | ').trimEnd();
console.log(`\ndsr-agent bench — ${meta.date}, Node ${meta.node}, ${meta.cpus} CPUs (${meta.cpu_model})${quick ? ', --quick' : ''}\n`);
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
for (const r of rows) console.log(line(r));
console.log(`\nwrote ${file} (${meta.duration_s} s)`);
process.exit(Object.keys(failures).length ? 1 : 0);
