import { describe, it, expect, afterEach } from '@jest/globals';
import { readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { startTarget, json, type Target } from './helpers/target.js';
import { startService, bearer, submit, waitFinal, type ServiceProcess } from './helpers/service.js';
import { writeServiceConfig, CLIENT_ID, CLIENT_SECRET, USER_UUID } from './helpers/service-config.js';

let target: Target | undefined;
let services: ServiceProcess[] = [];
let dirs: string[] = [];
afterEach(async () => {
  await Promise.all(services.map((s) => s.stop('SIGKILL')));
  await target?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  services = [];
  dirs = [];
  target = undefined;
});

const PETER = [{ first_name: 'Peter', last_name: 'Gibbons' }];

describe('dsr-agent serve: lifecycle', () => {
  it('survives kill -9: an accepted job resumes after restart and finishes', async () => {
    let hang = true;
    target = await startTarget((req, res) => {
      if (req.url!.startsWith('/users') && hang) return; // never answers while hang is set
      json(res, 200, req.url!.startsWith('/users') ? PETER : {});
    });
    const { dir, configPath } = writeServiceConfig(target.url);
    dirs.push(dir);
    const env = { DSR_AGENT_DATA_DIR: join(dir, 'data') };
    const first = await startService(configPath, env);
    services.push(first);
    const auth = await bearer(first.url, CLIENT_ID, CLIENT_SECRET);
    const accepted = await submit(first.url, auth, { type: 'access', identifiers: { email: 'peter@initech.com' }, id: 'crash-1' });
    expect(accepted.status).toBe(202);
    // Wait until the target has the request in flight, then kill -9.
    for (let i = 0; i < 100 && !target.received.some((r) => r.url.startsWith('/users')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await first.stop('SIGKILL')).toBe('SIGKILL');
    hang = false;
    const second = await startService(configPath, env);
    services.push(second);
    const job = await waitFinal(second.url, auth, 'crash-1'); // the same token works: the key derives from the shared secret
    expect(job).toMatchObject({ id: 'crash-1', type: 'access', status: 'succeeded' });
    expect(job.connections[0].reports).toHaveLength(1);
    expect(readFileSync(job.connections[0].reports[0], 'utf8')).toBe('first_name,Peter\nlast_name,Gibbons\n');
    // The journal no longer holds the identifier once the job is final.
    const journal = join(dir, 'data', 'jobs', 'finished', 'crash-1.json');
    expect(existsSync(journal)).toBe(true);
    expect(readFileSync(journal, 'utf8')).not.toContain('peter@initech.com');
  }, 40_000);

  it('SIGTERM: readiness turns 503, the running job finishes within the grace period, exit 0', async () => {
    target = await startTarget((req, res) => {
      if (req.url!.startsWith('/users')) setTimeout(() => json(res, 200, PETER), 1500);
      else json(res, 200, {});
    });
    const { dir, configPath } = writeServiceConfig(target.url, { agent: { shutdown_grace_seconds: 10 } });
    dirs.push(dir);
    const svc = await startService(configPath, { DSR_AGENT_DATA_DIR: join(dir, 'data') });
    services.push(svc);
    const auth = await bearer(svc.url, CLIENT_ID, CLIENT_SECRET);
    const { json: accepted } = await submit(svc.url, auth, { type: 'access', identifiers: { email: 'peter@initech.com' } });
    for (let i = 0; i < 100 && !target.received.some((r) => r.url.startsWith('/users')); i++) await new Promise((r) => setTimeout(r, 50));
    svc.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const ready = await fetch(`${svc.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await svc.exited).toBe(0);
    const journal = JSON.parse(readFileSync(join(dir, 'data', 'jobs', 'finished', `${accepted.id}.json`), 'utf8'));
    expect(journal.status).toBe('succeeded');
  }, 30_000);

  it('a second signal exits at once', async () => {
    target = await startTarget((req, res) => {
      if (!req.url!.startsWith('/users')) json(res, 200, {});
    });
    const { dir, configPath } = writeServiceConfig(target.url, { agent: { shutdown_grace_seconds: 60 } });
    dirs.push(dir);
    const svc = await startService(configPath, { DSR_AGENT_DATA_DIR: join(dir, 'data') });
    services.push(svc);
    const auth = await bearer(svc.url, CLIENT_ID, CLIENT_SECRET);
    await submit(svc.url, auth, { type: 'access', identifiers: { email: 'p@i.com' } });
    for (let i = 0; i < 100 && !target.received.some((r) => r.url.startsWith('/users')); i++) await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    svc.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    svc.child.kill('SIGTERM');
    expect(await svc.exited).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
  }, 30_000);

  it('a bad config at startup exits 2 with the same messages as validate', async () => {
    const { dir, configPath } = writeServiceConfig('http://127.0.0.1:9');
    dirs.push(dir);
    writeFileSync(configPath, JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), job_timeout_seconds: 'soon' }));
    const svc = await startService(configPath, { DSR_AGENT_DATA_DIR: join(dir, 'data') }, { wait: false });
    services.push(svc);
    expect(await svc.exited).toBe(2);
    expect(svc.output()).toMatch(/CONFIG_INVALID[\s\S]*\/job_timeout_seconds/);
  });

  it('missing API client credentials at startup exit non-zero naming the location', async () => {
    const { dir, configPath } = writeServiceConfig('http://127.0.0.1:9', { datagrail_agent_credentials_location: 'nope' });
    dirs.push(dir);
    const svc = await startService(configPath, { DSR_AGENT_DATA_DIR: join(dir, 'data') }, { wait: false });
    services.push(svc);
    expect(await svc.exited).not.toBe(0);
    expect(svc.output()).toMatch(/SECRET_NOT_FOUND.*nope/);
  });

  it("runs with exactly the Dockerfile's command and its HEALTHCHECK passes", async () => {
    const dockerfile = readFileSync('Dockerfile', 'utf8');
    const entry = JSON.parse(dockerfile.match(/^ENTRYPOINT (\[.*\])$/m)![1]!) as string[];
    const cmd = JSON.parse(dockerfile.match(/^CMD (\[.*\])$/m)![1]!) as string[];
    const health = JSON.parse(dockerfile.match(/CMD (\["node", "-e".*\])$/m)![1]!) as string[];
    expect(entry[0]).toBe('node');
    expect(entry.at(-1)).toBe('dist/cli.js');
    target = await startTarget((_req, res) => json(res, 200, []));
    const { dir, configPath } = writeServiceConfig(target.url);
    dirs.push(dir);
    // The image passes the config the DataGrail way: DATAGRAIL_AGENT_CONFIG_FILE (or DATAGRAIL_AGENT_CONFIG).
    const svc = await startService(configPath, { DSR_AGENT_DATA_DIR: join(dir, 'data'), DATAGRAIL_AGENT_CONFIG_FILE: configPath, NODE_ENV: 'production' }, { args: [...entry.slice(1), ...cmd] });
    services.push(svc);
    const port = new URL(svc.url).port;
    const code = await new Promise<number>((resolve) =>
      execFile(health[0]!, health.slice(1), { env: { PATH: process.env.PATH!, PORT: port } }, (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0)),
    );
    expect(code).toBe(0);
    const root = await (await fetch(svc.url)).json();
    expect(root).toEqual({ version: JSON.parse(readFileSync('package.json', 'utf8')).version });
    await svc.stop('SIGKILL');
    const downCode = await new Promise<number>((resolve) =>
      execFile(health[0]!, health.slice(1), { env: { PATH: process.env.PATH!, PORT: port } }, (err) => resolve(err ? 1 : 0)),
    );
    expect(downCode).toBe(1);
  });
});

describe('dsr-agent serve: callback', () => {
  it('POSTs the final job to callback_url with the bearer token, retrying a receiver that fails first', async () => {
    target = await startTarget((req, res) => json(res, 200, req.url!.startsWith('/users') ? PETER : {}));
    const receiver = await startTarget((_req, res, { n }) => json(res, n < 3 ? 503 : 200, {}));
    try {
      const { dir, configPath } = writeServiceConfig(target.url, { callback_url: `${receiver.url}/dsr/callback` });
      dirs.push(dir);
      const svc = await startService(configPath, { DSR_AGENT_DATA_DIR: join(dir, 'data') });
      services.push(svc);
      const auth = await bearer(svc.url, CLIENT_ID, CLIENT_SECRET);
      await submit(svc.url, auth, { type: 'access', identifiers: { email: 'peter@initech.com' }, id: 'cb-1' });
      for (let i = 0; i < 200 && receiver.received.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
      expect(receiver.received.length).toBe(3);
      const last = receiver.received[2]!;
      expect(last.headers.authorization).toBe('Bearer cb-token');
      const body = JSON.parse(last.body);
      expect(body).toMatchObject({ id: 'cb-1', type: 'access', status: 'succeeded', connections: [{ uuid: USER_UUID, status: 'succeeded' }] });
      expect(body.created_at).toMatch(/^\d{4}-/);
      expect(last.body).not.toContain('peter@initech.com');
    } finally {
      await receiver.close();
    }
  }, 30_000);
  it('a callback pending at kill -9 is delivered after the restart, without running the job again', async () => {
    target = await startTarget((req, res) => json(res, 200, req.url!.startsWith('/users') ? PETER : {}));
    let receiverUp = false;
    const receiver = await startTarget((_req, res) => json(res, receiverUp ? 200 : 503, {}));
    try {
      const { dir, configPath } = writeServiceConfig(target.url, { callback_url: `${receiver.url}/dsr/callback` });
      dirs.push(dir);
      const env = { DSR_AGENT_DATA_DIR: join(dir, 'data') };
      const first = await startService(configPath, env);
      services.push(first);
      const auth = await bearer(first.url, CLIENT_ID, CLIENT_SECRET);
      await submit(first.url, auth, { type: 'access', identifiers: { email: 'peter@initech.com' }, id: 'cb-kill' });
      for (let i = 0; i < 200 && receiver.received.length < 1; i++) await new Promise((r) => setTimeout(r, 50));
      expect(receiver.received.length).toBeGreaterThanOrEqual(1); // the first attempt failed: the callback is pending
      expect(await first.stop('SIGKILL')).toBe('SIGKILL');
      const usersCalls = target.received.filter((r) => r.url.startsWith('/users')).length;

      receiverUp = true;
      const before = receiver.received.length;
      const second = await startService(configPath, env);
      services.push(second);
      for (let i = 0; i < 200 && receiver.received.length === before; i++) await new Promise((r) => setTimeout(r, 50));
      const last = receiver.received.at(-1)!;
      expect(JSON.parse(last.body)).toMatchObject({ id: 'cb-kill', status: 'succeeded' });
      expect(target.received.filter((r) => r.url.startsWith('/users')).length).toBe(usersCalls); // the job did not run again
    } finally {
      await receiver.close();
    }
  }, 40_000);

  it('callback_url without datagrail_credentials_location: warns at startup and calls back without Authorization', async () => {
    target = await startTarget((req, res) => json(res, 200, req.url!.startsWith('/users') ? PETER : {}));
    const receiver = await startTarget((_req, res) => json(res, 200, {}));
    try {
      const { dir, configPath } = writeServiceConfig(target.url, { callback_url: `${receiver.url}/dsr/callback`, datagrail_credentials_location: undefined });
      dirs.push(dir);
      const svc = await startService(configPath, { DSR_AGENT_DATA_DIR: join(dir, 'data') });
      services.push(svc);
      expect(svc.output()).toContain('callback_url is set without datagrail_credentials_location');
      const auth = await bearer(svc.url, CLIENT_ID, CLIENT_SECRET);
      await submit(svc.url, auth, { type: 'access', identifiers: { email: 'peter@initech.com' }, id: 'cb-noauth' });
      for (let i = 0; i < 200 && receiver.received.length < 1; i++) await new Promise((r) => setTimeout(r, 50));
      expect(JSON.parse(receiver.received[0]!.body)).toMatchObject({ id: 'cb-noauth', status: 'succeeded' });
      expect(receiver.received[0]!.headers.authorization).toBeUndefined();
    } finally {
      await receiver.close();
    }
  }, 30_000);
});
