/**
 * `dsr-agent serve` polling a fake Dastra: requests become jobs, outcomes are written back once,
 * even when the service is killed between taking a request and writing it back.
 */
import { describe, it, expect, afterEach } from '@jest/globals';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTarget, json, type Target } from './helpers/target.js';
import { startService, bearer, type ServiceProcess } from './helpers/service.js';
import { writeServiceConfig, CLIENT_ID, CLIENT_SECRET } from './helpers/service-config.js';
import { startDastraFake, type DastraFake } from './helpers/fakes/dastra.js';
import { sourceJobId } from '../src/sources/ledger.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A config with one connection at `target` and a Dastra source polled every second. */
function config(target: Target, dastra: DastraFake): { dir: string; configPath: string } {
  const written = writeServiceConfig(target.url, {
    request_sources: [
      {
        name: 'dastra',
        type: 'Dastra',
        credentials_location: 'dastra',
        headers: { Authorization: '{authorization}' },
        options: { base_url: dastra.url, workspace_id: dastra.workspaceId, poll_interval_seconds: 1, state_when_done: 'Closed' },
      },
    ],
  });
  const secretsPath = join(written.dir, 'secrets.json');
  const secrets = JSON.parse(readFileSync(secretsPath, 'utf8'));
  writeFileSync(secretsPath, JSON.stringify({ ...secrets, dastra: { authorization: dastra.authorization } }));
  cleanups.push(() => rmSync(written.dir, { recursive: true, force: true }));
  return written;
}

async function serve(configPath: string, dir: string): Promise<ServiceProcess> {
  const svc = await startService(configPath, { DSR_AGENT_DATA_DIR: join(dir, 'data') });
  cleanups.push(() => svc.stop('SIGKILL'));
  return svc;
}

describe('serve with a Dastra request source', () => {
  it('turns eligible requests into jobs, writes each outcome back once, and reports the source in /readyz and /metrics', async () => {
    const dastra = await startDastraFake();
    cleanups.push(() => dastra.close());
    const target = await startTarget((req, res) => json(res, 200, req.method === 'GET' && req.url!.startsWith('/users') ? [{ plan: 'gold' }] : {}));
    cleanups.push(() => target.close());
    const a = dastra.addRequest({ email: 'peter@initech.example', purposes: ['Access', 'Erasure'], identityValidated: true, state: 'Open' });
    const notValidated = dastra.addRequest({ email: 'samir@initech.example', purposes: ['Access'], identityValidated: false, state: 'Open' });
    const { dir, configPath } = config(target, dastra);
    const svc = await serve(configPath, dir);

    await until('the write-back', () => dastra.request(a.id)?.state === 'Closed');
    const auth = await bearer(svc.url, CLIENT_ID, CLIENT_SECRET);
    for (const type of ['access', 'delete'] as const) {
      const job = await (await fetch(`${svc.url}/api/v1/jobs/${sourceJobId('dastra', String(a.id), type)}`, { headers: auth })).json();
      expect(job).toMatchObject({ type, status: 'succeeded' });
    }
    const message = String(dastra.request(a.id)!.resolutionMessage);
    expect(message).toContain(sourceJobId('dastra', String(a.id), 'access'));
    expect(message).not.toContain('peter@initech.example');
    expect(dastra.request(notValidated.id)!.resolutionMessage ?? null).toBe(null);
    // Later rounds leave it alone: one write-back.
    await until('two more polls', async () => (await fetch(`${svc.url}/metrics`).then((r) => r.text())).match(/dsr_source_polls_total\{source="dastra",outcome="ok"\} ([3-9]|\d\d)/));
    expect(dastra.count('update')).toBe(1);
    const ready = (await (await fetch(`${svc.url}/readyz`)).json()) as { sources: Record<string, { ok: boolean; last_success?: string }> };
    expect(ready.sources.dastra).toMatchObject({ ok: true, last_success: expect.any(String) });
    const metrics = await (await fetch(`${svc.url}/metrics`)).text();
    expect(metrics).toMatch(/dsr_source_requests_total\{source="dastra",action="taken"\} 2/);
    expect(metrics).toMatch(/dsr_source_requests_total\{source="dastra",action="written_back"\} 1/);
    expect(svc.output()).not.toContain('peter@initech.example');
  }, 60_000);

  it('after kill -9 between taking a request and writing it back: one job, one write-back', async () => {
    const dastra = await startDastraFake();
    cleanups.push(() => dastra.close());
    let release: (() => void) | undefined;
    const held = new Promise<void>((r) => (release = r));
    let accessCalls = 0;
    const target = await startTarget(async (req, res) => {
      if (req.method === 'GET' && req.url!.startsWith('/users')) {
        accessCalls++;
        if (accessCalls === 1) await held; // the first run hangs until the service is killed
        return json(res, 200, [{ plan: 'gold' }]);
      }
      json(res, 200, {});
    });
    cleanups.push(() => target.close());
    const a = dastra.addRequest({ email: 'peter@initech.example', purposes: ['Access'], identityValidated: true, state: 'Open' });
    const { dir, configPath } = config(target, dastra);
    const first = await serve(configPath, dir);
    await until('the job to be running', () => accessCalls === 1);
    first.child.kill('SIGKILL');
    await first.exited;
    release!();
    expect(dastra.count('update')).toBe(0);

    const second = await serve(configPath, dir);
    await until('the write-back', () => dastra.request(a.id)?.state === 'Closed');
    await until('two more polls', async () => (await fetch(`${second.url}/metrics`).then((r) => r.text())).match(/dsr_source_polls_total\{source="dastra",outcome="ok"\} [2-9]/));
    expect(dastra.count('update')).toBe(1);
    const auth = await bearer(second.url, CLIENT_ID, CLIENT_SECRET);
    const job = await (await fetch(`${second.url}/api/v1/jobs/${sourceJobId('dastra', String(a.id), 'access')}`, { headers: auth })).json();
    expect(job).toMatchObject({ status: 'succeeded' });
  }, 60_000);

  it('a refused credential shows in /readyz details, and the job API keeps working', async () => {
    const dastra = await startDastraFake();
    cleanups.push(() => dastra.close());
    const target = await startTarget((_req, res) => json(res, 200, []));
    cleanups.push(() => target.close());
    const { dir, configPath } = config(target, dastra);
    const secretsPath = join(dir, 'secrets.json');
    const secrets = JSON.parse(readFileSync(secretsPath, 'utf8'));
    writeFileSync(secretsPath, JSON.stringify({ ...secrets, dastra: { authorization: 'Basic d3Jvbmc6a2V5' } }));
    const svc = await serve(configPath, dir);
    const ready = await until('the source error in /readyz', async () => {
      const body = (await (await fetch(`${svc.url}/readyz`)).json()) as { status: string; sources?: Record<string, { ok: boolean; status?: number; code?: string }> };
      return body.sources?.dastra?.ok === false ? body : undefined;
    });
    expect(ready.sources!.dastra).toMatchObject({ ok: false, status: 401, code: 'HTTP_STATUS' });
    expect(svc.output()).toContain('refused the source');
    const auth = await bearer(svc.url, CLIENT_ID, CLIENT_SECRET);
    const res = await fetch(`${svc.url}/api/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'access', identifiers: { email: 'x@y.z' } }) });
    expect(res.status).toBe(202);
  }, 60_000);
});
