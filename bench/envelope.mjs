// Case 5, envelope: a 1 GiB access response of ~1 KiB records, read two ways by the agent (each run
// its own process, with the Dockerfile's node flags) from a target in another process:
//   bare      one query, one bare JSON array (DataGrail's contract)
//   envelope  a token login, then pages of 10,000 records in {"code":200,"status":"success","response":[…],"total":T}
//             (records "/response", expect /status, page pagination stopping at /total)
// Both read the very same records (bench/target.mjs). Reports each run's MB/s and peak RSS, and
// throughput_ratio = envelope MB/s / bare MB/s. Fails when the runs wrote different numbers of
// reports, a page is missing, or the enveloped run did not log in exactly once. Prints one JSON line.
//   --quick: 100 MiB instead of 1 GiB; --mib N: another size; --rounds R: R pairs (alternating
//   order, best of each counts; default 1); --page-size S (default 10000);
//   --agent-node-flags="...": other node flags for the agents;
//   --cpu-prof DIR: a V8 CPU profile of every agent run, DIR/<mode>-<round>.cpuprofile
//   (summarise with `node bench/profile-summary.mjs FILE`).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BENCH, MiB, agentNodeFlags, emit, parseArgs, round, runChildJson, startTarget } from './lib.mjs';

const args = parseArgs();
const flags = agentNodeFlags(args);
const mib = Number(args.mib ?? (args.quick ? 100 : 1024));
const bytes = mib * MiB;
const rounds = Number(args.rounds ?? 1);
const pageSize = Number(args['page-size'] ?? 10_000);
const profDir = typeof args['cpu-prof'] === 'string' ? resolve(args['cpu-prof']) : undefined;
if (profDir) mkdirSync(profDir, { recursive: true });

const target = await startTarget();
const runs = { bare: [], envelope: [] };
try {
  for (let r = 0; r < rounds; r++) {
    // Alternate the order, so drift in the machine's load hits both sides.
    for (const mode of r % 2 === 0 ? ['bare', 'envelope'] : ['envelope', 'bare']) {
      const prof = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${mode}-${r}.cpuprofile`] : [];
      const res = await runChildJson(
        join(BENCH, 'envelope-agent.mjs'),
        ['--target', target.url, '--bytes', String(bytes), '--mode', mode, '--page-size', String(pageSize)],
        { nodeArgs: [...flags, ...prof] },
      );
      process.stderr.write(` [${mode} ${res.mb_per_s} MB/s, ${res.peak_rss_mib} MiB]`);
      runs[mode].push(res);
    }
  }
} finally {
  await target.stop();
}

// Every run must have read the same records, the enveloped ones in ceil(records / page size) pages
// after exactly one login.
const problems = [];
const records = runs.bare[0].records;
const pages = Math.ceil(records / pageSize);
for (const r of [...runs.bare, ...runs.envelope]) {
  if (r.records !== records || records === 0) problems.push(`${r.mode} run wrote ${r.records} reports, the first bare run ${records}`);
  if (r.unauthorized !== 0) problems.push(`${r.mode} run got ${r.unauthorized} 401 answers`);
}
for (const r of runs.envelope) {
  if (r.logins !== 1) problems.push(`enveloped run logged in ${r.logins} times, not once`);
  if (r.pages !== pages) problems.push(`enveloped run read ${r.pages} pages, not ${pages}`);
}
if (problems.length) {
  console.error(`envelope: ${problems.join('; ')}\n${JSON.stringify(runs)}`);
  process.exit(1);
}

const best = (list, key, pick) => pick(...list.map((r) => r[key]));
const bare = best(runs.bare, 'mb_per_s', Math.max);
const envelope = best(runs.envelope, 'mb_per_s', Math.max);
const pairRatios = runs.envelope.map((e, i) => e.mb_per_s / runs.bare[i].mb_per_s).sort((a, b) => a - b);
emit({
  envelope_mb_per_s: envelope,
  bare_mb_per_s: bare,
  throughput_ratio: round(envelope / bare, 3),
  envelope_peak_rss_mib: best(runs.envelope, 'peak_rss_mib', Math.max),
  bare_peak_rss_mib: best(runs.bare, 'peak_rss_mib', Math.max),
  pages,
  records,
  logins: best(runs.envelope, 'logins', Math.max),
  mib,
  page_size: pageSize,
  envelope_bytes: runs.envelope[0].bytes,
  bare_bytes: runs.bare[0].bytes,
  envelope_seconds: best(runs.envelope, 'seconds', Math.min),
  bare_seconds: best(runs.bare, 'seconds', Math.min),
  // The heap the job result's list of report locations holds at the end (one string per report).
  report_list_mib: best(runs.envelope, 'report_list_mib', Math.max),
  ratio_paired_median: round((pairRatios[Math.floor((pairRatios.length - 1) / 2)] + pairRatios[Math.floor(pairRatios.length / 2)]) / 2, 3),
  agent_node_flags: flags.join(' '),
  // Each run: process.memoryUsage() and V8's spaces when its RSS was highest, and its own figures.
  runs: [...runs.bare, ...runs.envelope].map(({ mode, mb_per_s, seconds, peak_rss_mib, report_list_mib, at_peak_mib }) => ({ mode, mb_per_s, seconds, peak_rss_mib, report_list_mib, at_peak_mib })),
});
