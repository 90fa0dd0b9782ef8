// `npm run chaos`: the service under faults, scripted from outside against real processes
// (`node dist/cli.js serve`), as docs/RELIABILITY.md describes. Not part of `npm test`: it takes a few
// minutes, needs redis-server on the PATH and root for the full-disk tmpfs.
//
//   npm run chaos                              # every scenario (build first)
//   npm run chaos -- --only kill9,token        # some of them: kill9, pid1, redis, disk, slow, token, restart
//   node scripts/chaos.mjs --cli /other/dist/cli.js --keep
//
// Options: --only LIST; --cli PATH (default dist/cli.js); --keep (keep the work folder with the
// services' logs; it is kept anyway when a goal is missed); --cycles N, --jobs N (kill9);
// --slow-timeout S (slow: agent.http_request_timeout_seconds, default 10); --json FILE (results).
// Each scenario prints its figures and the HTTP status codes it saw; the run ends with a summary
// table and the goals met or missed. Exit code 0 when every goal is met, 1 otherwise.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, tempDir } from './chaos/lib.mjs';
import * as kill9 from './chaos/kill9.mjs';
import * as pid1 from './chaos/pid1.mjs';
import * as redis from './chaos/redis.mjs';
import * as disk from './chaos/disk.mjs';
import * as slow from './chaos/slow-clients.mjs';
import * as token from './chaos/token.mjs';
import * as restart from './chaos/restart.mjs';

const SCENARIOS = [kill9, pid1, redis, disk, slow, token, restart];

const { values: opts } = parseArgs({
  options: {
    only: { type: 'string' },
    cli: { type: 'string', default: join(ROOT, 'dist', 'cli.js') },
    keep: { type: 'boolean', default: false },
    cycles: { type: 'string' },
    jobs: { type: 'string' },
    'slow-timeout': { type: 'string' },
    json: { type: 'string' },
  },
});

const only = opts.only ? opts.only.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
for (const n of only ?? []) {
  if (!SCENARIOS.some((s) => s.name === n)) {
    console.error(`unknown scenario '${n}'; choose from ${SCENARIOS.map((s) => s.name).join(', ')}`);
    process.exit(2);
  }
}
if (!existsSync(opts.cli)) {
  console.error(`${opts.cli} does not exist: run npm run build first (npm run chaos does), or pass --cli`);
  process.exit(2);
}

const work = tempDir('run');
const results = [];
const t0 = Date.now();
console.log(`dsr-agent chaos run — ${new Date().toISOString()} — ${opts.cli} — node ${process.version}`);
console.log(`work folder (service logs): ${work}\n`);

for (const scenario of SCENARIOS.filter((s) => !only || only.includes(s.name))) {
  const dir = join(work, scenario.name);
  mkdirSync(dir, { recursive: true });
  console.log(`## ${scenario.name}: ${scenario.title}`);
  const started = Date.now();
  const say = (line) => console.log(`  ${line}`);
  let outcome;
  try {
    outcome = await scenario.run({ cli: opts.cli, dir, opts, say });
  } catch (err) {
    say(`FAILED TO RUN: ${err.stack ?? err}`);
    outcome = { error: String(err.message ?? err), goals: [{ goal: 'scenario ran', value: 'crashed', met: false }] };
  }
  // A scenario may return several results (redis: without and with persistence).
  for (const result of Array.isArray(outcome) ? outcome : [outcome]) {
    result.name ??= scenario.name;
    if (result.skipped) say(`SKIPPED: ${result.skipped}`);
    say(`[${result.name}]`);
    for (const line of result.statuses?.lines() ?? []) say(`  status codes — ${line}`);
    for (const note of result.notes ?? []) say(`  note: ${note}`);
    for (const g of result.goals ?? []) say(`  ${g.met ? 'met   ' : 'MISSED'}  ${g.goal}: ${g.value}`);
    results.push(result);
  }
  say(`(${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
}

// The summary: one row per scenario, then every goal. Markdown, so it pastes into docs/RELIABILITY.md.
const cell = (v) => (v === undefined || v === null ? '-' : String(v));
console.log(`## Summary (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
console.log('| scenario | accepted | lost | stuck | run twice (allowed / violations) | unexpected 5xx | status codes | goals |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  const f = r.figures ?? {};
  const twice = f.runTwice === undefined ? '-' : `${f.runTwice} (${f.runTwiceAllowed} / ${f.runTwiceViolations})`;
  const codes = r.statuses ? r.statuses.lines().join('; ') : r.skipped ? `skipped: ${r.skipped}` : '-';
  const goals = r.goals?.length ? `${r.goals.filter((g) => g.met).length}/${r.goals.length} met` : '-';
  console.log(`| ${r.name} | ${cell(f.accepted)} | ${cell(f.lost)} | ${cell(f.stuck)} | ${twice} | ${cell(f.unexpected5xx)} | ${codes} | ${goals} |`);
}
console.log('\n| scenario | goal | value | |');
console.log('| --- | --- | --- | --- |');
for (const r of results) for (const g of r.goals ?? []) console.log(`| ${r.name} | ${g.goal} | ${cell(g.value)} | ${g.met ? 'met' : '**missed**'} |`);

const missed = results.flatMap((r) => (r.goals ?? []).filter((g) => !g.met));
if (opts.json) {
  writeFileSync(opts.json, JSON.stringify(results.map((r) => ({ ...r, statuses: r.statuses ? Object.fromEntries([...r.statuses.routes].map(([k, t]) => [k, Object.fromEntries(t.counts)])) : undefined })), null, 2));
}
if (missed.length === 0 && !opts.keep) rmSync(work, { recursive: true, force: true });
else console.log(`\nservice logs kept in ${work}`);
console.log(`\n${missed.length === 0 ? 'all goals met' : `${missed.length} goal(s) missed`}`);
process.exit(missed.length === 0 ? 0 : 1);
