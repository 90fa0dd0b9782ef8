#!/usr/bin/env node
// `npm run demo`: the bundled example end to end, on the embedded default (no Redis, local files).
// 1. starts the demo API (scripts/demo-api.mjs) that config/example.json points at;
// 2. runs the CLI: validate, test, and an access request, then prints the CSV reports it wrote;
// 3. starts `dsr-agent serve` and walks the job API as curl would: token, job, result, report.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoApi } from './demo-api.mjs';

const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'dist/cli.js');
const config = join(root, 'config/example.json');
const out = join(root, 'results/demo');
const env = { ...process.env, LOGLEVEL: process.env.LOGLEVEL ?? 'WARNING' };

const step = (title) => console.log(`\n\x1b[1m== ${title}\x1b[0m`);
// Async on purpose: the demo API runs in this process and must keep answering while the CLI runs.
const run = (args, extraEnv = {}) => {
  console.log(`$ dsr-agent ${args.join(' ')}`);
  const child = spawn(process.execPath, [cli, '--config', config, ...args], { stdio: 'inherit', env: { ...env, ...extraEnv } });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
};

const api = await startDemoApi();
let failed = false;
try {
  step('validate the example config');
  failed ||= (await run(['validate'])) !== 0;

  step('run its test queries');
  failed ||= (await run(['test'])) !== 0;

  step('an access request for peter@initech.com');
  rmSync(out, { recursive: true, force: true });
  failed ||= (await run(['run', 'access', '--identifier', 'email=peter@initech.com', '--out', out])) !== 0;

  step('the CSV reports it wrote');
  for (const uuid of readdirSync(out).sort()) {
    for (const file of readdirSync(join(out, uuid)).sort()) {
      console.log(`--- ${join('results/demo', uuid, file)}`);
      process.stdout.write(readFileSync(join(out, uuid, file), 'utf8'));
    }
  }

  step('a token flow: what an access request would send to the Support Desk (dry run: login first, token masked)');
  failed ||= (await run(['run', 'access', '--identifier', 'email=peter@initech.com', '--connection', 'Support Desk', '--dry-run'])) !== 0;

  step('request sources: what the Dastra source would start (dry run), then one round that runs it and writes back');
  rmSync(join(root, 'data/demo-sources'), { recursive: true, force: true });
  const sourcesEnv = { DSR_AGENT_DATA_DIR: join(root, 'data/demo-sources') };
  failed ||= (await run(['sources', 'poll', '--once', '--dry-run'], sourcesEnv)) !== 0;
  failed ||= (await run(['sources', 'poll', '--once'], sourcesEnv)) !== 0;

  step('what a delete would send (dry run, secrets masked)');
  failed ||= (await run(['run', 'delete', '--identifier', 'email=peter@initech.com', '--dry-run'])) !== 0;

  const service = await import('./demo-service.mjs').catch(() => undefined);
  if (service) {
    step('the job API (dsr-agent serve on the embedded queue)');
    failed ||= !(await service.walkJobApi({ cli, config, env }));
  }
} finally {
  api.close();
}
console.log(failed ? '\ndemo: something failed (see above)' : '\ndemo: all steps succeeded');
process.exit(failed ? 1 : 0);
