/** The CLI sets up its own heap limits: started without node flags, it runs with the agent's (src/heap-flags.ts). */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTarget, json, type Target } from './helpers/target.js';
import { HEAP_FLAGS, commandOf, heapFlagsArgv, missingHeapFlags } from '../src/heap-flags.js';

const CLI = join(process.cwd(), 'dist/cli.js');

describe('heap flags', () => {
  it('adds only the flags the user did not set, on the command line or in NODE_OPTIONS', () => {
    expect(missingHeapFlags([])).toEqual([...HEAP_FLAGS]);
    expect(missingHeapFlags(['--max-semi-space-size=8'])).toEqual(['--heap-growing-percent=50']);
    expect(missingHeapFlags(['--max_semi_space_size=8', '--heap-growing-percent=20'])).toEqual([]);
    expect(missingHeapFlags([], '--max-semi-space-size=64 --enable-source-maps')).toEqual(['--heap-growing-percent=50']);
  });

  it('restarts only the commands that read responses, keeping node flags before and arguments after', () => {
    expect(commandOf(['-c', 'run', 'validate'])).toBe('validate');
    expect(commandOf(['--config=x.json', 'run', 'access'])).toBe('run');
    const proc = (args: string[]) => ({ execPath: '/node', execArgv: ['--enable-source-maps'], argv: ['/node', '/cli.js', ...args] });
    expect(heapFlagsArgv(proc(['validate']))).toBeUndefined();
    expect(heapFlagsArgv(proc(['--version']))).toBeUndefined();
    expect(heapFlagsArgv(proc(['--config', 'c.json', 'run', 'access', '-i', 'email=a@b.c']))).toEqual([
      '/node', '--enable-source-maps', ...HEAP_FLAGS, '/cli.js', '--config', 'c.json', 'run', 'access', '-i', 'email=a@b.c',
    ]);
  });
});

describe('dsr-agent run, started without node flags', () => {
  let target: Target;
  let dir: string;
  let config: string;
  /** The command line of the CLI process at the moment the target got its request. */
  let seen: string[] = [];
  let pid = 0;

  beforeAll(async () => {
    target = await startTarget((_req, res) => {
      seen = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      json(res, 200, [{ user_id: 'u-1' }]);
    });
    dir = mkdtempSync(join(tmpdir(), 'dsr-cli-heap-'));
    writeFileSync(join(dir, 'secrets.json'), JSON.stringify({ svc: { token: 't' } }));
    config = join(dir, 'config.json');
    const q = { url: `${target.url}/ids?email={email}`, verb: 'GET', verify_ssl: 'true', headers: { Authorization: 'Bearer {token}' } };
    writeFileSync(
      config,
      JSON.stringify({
        platform: { credentials_manager: { provider: 'JSONFile', options: { filename: 'secrets.json' } } },
        connections: [
          { name: 'Ids', uuid: '44444444-4444-4444-8444-444444444444', capabilities: ['privacy/identifiers'], mode: 'live', connector_type: 'APIProxy', queries: { test: [q], identifiers: { user_id: [q] } }, credentials_location: 'svc' },
        ],
      }),
    );
  });
  afterAll(async () => {
    await target.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (nodeFlags: string[]) =>
    new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [...nodeFlags, CLI, '--config', config, 'run', 'identifiers', '-i', 'email=a@b.c', '--json'], {
        env: { PATH: process.env.PATH!, LOGLEVEL: 'ERROR' },
      });
      pid = child.pid!;
      let stdout = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.on('close', (code) => resolve({ code, stdout }));
    });

  it('the same process runs the job with the heap flags', async () => {
    const r = await run([]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).connections[0].identifiers).toEqual({ user_id: ['u-1'] });
    expect(seen.slice(1, 1 + HEAP_FLAGS.length)).toEqual([...HEAP_FLAGS]);
    expect(seen).toContain(CLI);
  });

  it("a user's own flag is kept, and only the missing one is added", async () => {
    const r = await run(['--max-semi-space-size=8']);
    expect(r.code).toBe(0);
    expect(seen.filter((a) => a.startsWith('--max-semi-space-size') || a.startsWith('--heap-growing-percent'))).toEqual(['--max-semi-space-size=8', '--heap-growing-percent=50']);
  });
});
