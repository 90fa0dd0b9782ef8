#!/usr/bin/env node
// The test command: type-check, build (the CLI and service tests run dist/), then jest.
// Ends with the plain line `N passed, N failed` that CI reads, and keeps jest's exit code.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

const run = (cmd, args, env = {}) =>
  spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1;

if (run('npx', ['tsc', '--noEmit', '-p', 'tsconfig.json']) !== 0) {
  console.log('0 passed, 1 failed');
  process.exit(1);
}
if (run('npx', ['tsc', '-p', 'tsconfig.build.json']) !== 0) {
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const out = '.test-results.json';
rmSync(out, { force: true });
const code = run('npx', ['jest', '--json', `--outputFile=${out}`, ...process.argv.slice(2)], {
  // --expose-gc: memory tests collect before measuring, so earlier files' garbage (and the heap limits V8
  // grew for it) do not count against them.
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-vm-modules --no-warnings --expose-gc`.trim(),
});
let passed = 0;
let failed = 0;
try {
  const r = JSON.parse(readFileSync(out, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
} catch {
  failed = 1;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(code === 0 && failed === 0 ? 0 : code || 1);
