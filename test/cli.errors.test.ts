/**
 * An unexpected error (not an AgentError) at the CLI's top level: one line with the code and what failed
 * at the default level, the stack trace only at LOGLEVEL=DEBUG (issue 10). Triggered from outside by real
 * failures the code does not wrap: an --out folder under a file (ENOTDIR) and a data directory that is a
 * file (EEXIST at startup of serve).
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from './helpers/service.js';
import { writeServiceConfig } from './helpers/service-config.js';

function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Lines that are not pino's JSON log lines (the CLI logs to stderr too). */
const plainLines = (stderr: string) => stderr.split('\n').filter((l) => l && !l.startsWith('{'));
const STACK_FRAME = /^\s+at /m;

let dir: string;
let configPath: string;
let aFile: string;
beforeAll(() => {
  ({ dir, configPath } = writeServiceConfig('http://127.0.0.1:9'));
  aFile = join(dir, 'a-file');
  writeFileSync(aFile, 'not a folder');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe.each<[string, () => { args: string[]; env: Record<string, string>; what: RegExp }]>([
  ['run access --out under a file (ENOTDIR)', () => ({ args: ['run', 'access', '--config', configPath, '-i', 'email=a@b.c', '--out', join(aFile, 'reports')], env: {}, what: /Error: ENOTDIR: not a directory, mkdir '.*a-file\/reports'/ })],
  ['serve with DSR_AGENT_DATA_DIR a file (EEXIST)', () => ({ args: ['serve', '--config', configPath], env: { DSR_AGENT_DATA_DIR: aFile, PORT: '0' }, what: /Error: EEXIST: file already exists, mkdir '.*a-file'/ })],
])('an unexpected error: %s', (_name, setup) => {
  it('prints one line, error [INTERNAL] with the error and a hint, no stack trace, and exits 1', async () => {
    const { args, env, what } = setup();
    const res = await runCli(args, { ...env, LOGLEVEL: 'INFO' });
    expect(res.code).toBe(1);
    expect(res.stderr).not.toMatch(STACK_FRAME);
    const lines = plainLines(res.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error \[INTERNAL\]: dsr-agent stopped on an unexpected error: /);
    expect(lines[0]).toMatch(what);
    expect(lines[0]).toMatch(/run again with LOGLEVEL=DEBUG for the stack trace$/);
  });

  it('adds the stack trace at LOGLEVEL=DEBUG', async () => {
    const { args, env, what } = setup();
    const res = await runCli(args, { ...env, LOGLEVEL: 'DEBUG' });
    expect(res.code).toBe(1);
    const lines = plainLines(res.stderr);
    expect(lines[0]).toMatch(/^error \[INTERNAL\]: dsr-agent stopped on an unexpected error: /);
    expect(lines[0]).toMatch(what);
    expect(res.stderr).toMatch(STACK_FRAME);
    expect(res.stderr).toMatch(/at mkdirSync/);
  });
});

describe('an AgentError that wraps a cause (serve with the JSONFile credentials file missing)', () => {
  let missing: { dir: string; configPath: string };
  beforeAll(() => {
    missing = writeServiceConfig('http://127.0.0.1:9');
    rmSync(join(missing.dir, 'secrets.json'));
  });
  afterAll(() => {
    rmSync(missing.dir, { recursive: true, force: true });
  });
  const serve = (level: string) => runCli(['serve', '--config', missing.configPath], { DSR_AGENT_DATA_DIR: join(missing.dir, 'data'), PORT: '0', LOGLEVEL: level });

  it('prints its code and message alone at the default level', async () => {
    const res = await serve('INFO');
    expect(res.code).not.toBe(0);
    expect(plainLines(res.stderr)).toEqual([expect.stringMatching(/^error \[SECRET_PROVIDER_ERROR\]: JSONFile: the credentials file .* does not exist/)]);
    expect(res.stderr).not.toMatch(STACK_FRAME);
  });

  it('adds the stack and the cause at LOGLEVEL=DEBUG', async () => {
    const res = await serve('DEBUG');
    expect(plainLines(res.stderr)[0]).toMatch(/^error \[SECRET_PROVIDER_ERROR\]: /);
    expect(res.stderr).toMatch(STACK_FRAME);
    expect(res.stderr).toMatch(/\[cause\]: Error: ENOENT/);
  });
});
