/** One `serve` per data directory: a second exits 2 naming the holder; a holder killed with -9 is taken over. */
import { describe, it, expect, afterEach } from '@jest/globals';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTarget, json, type Target } from './helpers/target.js';
import { startService, type ServiceProcess } from './helpers/service.js';
import { writeServiceConfig } from './helpers/service-config.js';
import { lockDataDir } from '../src/server/data-lock.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(): Promise<{ dir: string; configPath: string }> {
  const target: Target = await startTarget((_req, res) => json(res, 200, []));
  cleanups.push(() => target.close());
  const written = writeServiceConfig(target.url);
  cleanups.push(() => rmSync(written.dir, { recursive: true, force: true }));
  return written;
}

describe('data directory lock (issue 10)', () => {
  it('a second serve on the same data directory exits 2 naming the holder, even on another port; after kill -9 the next one takes over', async () => {
    const { dir, configPath } = await setup();
    const env = { DSR_AGENT_DATA_DIR: join(dir, 'data') };
    const first: ServiceProcess = await startService(configPath, env);
    cleanups.push(() => first.stop('SIGKILL'));

    const second = await startService(configPath, env, { wait: false }); // its own port (PORT=0): the lock, not the port, stops it
    cleanups.push(() => second.stop('SIGKILL'));
    expect(await second.exited).toBe(2);
    expect(second.output()).toMatch(new RegExp(`DATA_DIR_LOCKED.*in use by dsr-agent pid ${first.child.pid}`));
    expect(second.output()).not.toMatch(/\n\s+at /); // a message, no stack trace

    first.child.kill('SIGKILL');
    await first.exited;
    const third = await startService(configPath, env);
    cleanups.push(() => third.stop('SIGKILL'));
    expect((await fetch(`${third.url}/healthz`)).status).toBe(200);
    expect(await third.stop('SIGTERM')).toBe(0);
    expect(existsSync(join(dir, 'data', '.lock'))).toBe(false); // released on a clean stop
  }, 60_000);

  it('a lock file left half-written is stale and taken over', async () => {
    const { dir } = await setup();
    const data = join(dir, 'data');
    const release = lockDataDir(data);
    expect(() => lockDataDir(data)).toThrow(expect.objectContaining({ code: 'DATA_DIR_LOCKED' })); // our own pid holds it
    release();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(data, '.lock'), '{"pid":');
    const again = lockDataDir(data);
    again();
  });

  it('a lock left by an earlier life with this very pid on this host is stale (a container restarted after kill -9: node is pid 1 again)', async () => {
    const { dir } = await setup();
    const data = join(dir, 'data');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const { hostname } = await import('node:os');
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, '.lock'), JSON.stringify({ pid: process.pid, host: hostname(), started_at: '2026-11-30T00:00:00.000Z', nonce: 'an-earlier-life' }));
    const release = lockDataDir(data);
    expect(() => lockDataDir(data)).toThrow(expect.objectContaining({ code: 'DATA_DIR_LOCKED' })); // now it is ours
    release();
    expect(existsSync(join(data, '.lock'))).toBe(false);
  });

  it('a lock from another host is refused while renewed, and taken over once not renewed for 30 s', async () => {
    const { dir } = await setup();
    const data = join(dir, 'data');
    const { mkdirSync, utimesSync, writeFileSync } = await import('node:fs');
    mkdirSync(data, { recursive: true });
    const lock = join(data, '.lock');
    writeFileSync(lock, JSON.stringify({ pid: 4242, host: 'another-node', started_at: '2026-11-30T00:00:00.000Z', nonce: 'theirs' }));
    expect(() => lockDataDir(data)).toThrow(expect.objectContaining({ code: 'DATA_DIR_LOCKED', message: expect.stringContaining('another-node') }));
    const longAgo = new Date(Date.now() - 31_000);
    utimesSync(lock, longAgo, longAgo); // its holder stopped renewing it: a pod that died on another node
    const release = lockDataDir(data);
    expect(JSON.parse(readFileSync(lock, 'utf8')).pid).toBe(process.pid);
    release();
  });
});
