import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTarget, json, type Target } from './helpers/target.js';

const CLI = join(process.cwd(), 'dist/cli.js');
const SECRET = 'ZGVtbzpzdXBlci1zZWNyZXQ=';

function runCli(args: string[], env: Record<string, string> = {}, cwd = process.cwd()): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { PATH: process.env.PATH!, LOGLEVEL: 'INFO', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

let target: Target;
let dir: string;
let configPath: string;
const GOOD = '11111111-1111-4111-8111-111111111111';
const BAD = '22222222-2222-4222-8222-222222222222';
const TESTMODE = '33333333-3333-4333-8333-333333333333';

function conn(name: string, uuid: string, base: string, extra: Record<string, unknown> = {}) {
  const q = (path: string, more: Record<string, unknown> = {}) => ({ url: `${base}${path}`, verb: 'GET', verify_ssl: 'true', headers: { Authorization: 'Basic {credentials}' }, ...more });
  return {
    name,
    uuid,
    capabilities: ['privacy/access', 'privacy/delete', 'privacy/identifiers'],
    mode: 'live',
    connector_type: 'APIProxy',
    queries: {
      test: [q('/health')],
      access: [q('/users?email={email}')],
      delete: [q('/users', { verb: 'DELETE', body: '{{"email": "{email}"}}', headers: { Authorization: 'Basic {credentials}', 'Content-Type': 'application/json' } })],
      identifiers: { user_id: [q('/ids?email={email}')] },
    },
    credentials_location: 'svc',
    ...extra,
  };
}

beforeAll(async () => {
  target = await startTarget((req, res) => {
    const url = new URL(req.url!, 'http://x');
    if (url.pathname.startsWith('/bad')) return json(res, 500, {});
    if (url.pathname.endsWith('/health')) return json(res, 200, {});
    if (url.pathname.endsWith('/users')) return json(res, 200, req.method === 'GET' ? [{ first_name: 'Peter', friends: ['Samir'] }, { zip: '77070' }] : {});
    if (url.pathname.endsWith('/ids')) return json(res, 200, [{ user_id: 'u-1' }, { user_id: 'u-1' }]);
    json(res, 404, {});
  });
  dir = mkdtempSync(join(tmpdir(), 'dsr-cli-'));
  writeFileSync(join(dir, 'secrets.json'), JSON.stringify({ svc: { credentials: SECRET } }));
  configPath = join(dir, 'config.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      platform: { credentials_manager: { provider: 'JSONFile', options: { filename: 'secrets.json' } } },
      connections: [conn('Good', GOOD, target.url), conn('Bad', BAD, `${target.url}/bad`), conn('Staging', TESTMODE, target.url, { mode: 'test' })],
      agent: { retries: 0 },
    }),
  );
});
afterAll(async () => {
  await target.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('dsr-agent validate', () => {
  it('prints one line per connection and exits 0', async () => {
    const r = await runCli(['--config', configPath, 'validate']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Good \(11111111/);
    expect(r.stdout).toMatch(/Bad \(22222222/);
    expect(r.stdout).toMatch(/Staging \(33333333.*mode=test/);
  });

  it('exits 2 listing every problem', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ platform: { credentials_manager: { provider: 'Vault' } }, connections: [{ name: 'x', uuid: 'not-a-uuid', connector_type: 'Foo' }] }));
    const r = await runCli(['--config', bad, 'validate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('CONFIG_INVALID');
    expect(r.stderr).toMatch(/\/platform\/credentials_manager\/provider/);
    expect(r.stderr).toMatch(/\/connections\/0\/connector_type.*APIProxy/);
    expect(r.stderr).toMatch(/\/connections\/0\/uuid/);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('  /')).length).toBeGreaterThanOrEqual(4);
  });

  it('reads DATAGRAIL_AGENT_CONFIG_FILE, then DATAGRAIL_AGENT_CONFIG', async () => {
    expect((await runCli(['validate'], { DATAGRAIL_AGENT_CONFIG_FILE: configPath })).code).toBe(0);
    const inline = await runCli(['validate'], { DATAGRAIL_AGENT_CONFIG: readFileSync(configPath, 'utf8') }, dir);
    expect(inline.code).toBe(0);
    expect(inline.stdout).toContain('DATAGRAIL_AGENT_CONFIG');
    const none = await runCli(['validate']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--config.*DATAGRAIL_AGENT_CONFIG_FILE.*DATAGRAIL_AGENT_CONFIG/s);
  });
});

describe('dsr-agent test', () => {
  it('runs every connection whatever its mode and exits 1 when one is unhealthy', async () => {
    const r = await runCli(['--config', configPath, 'test']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/Good\s+11111111\S+\s+live\s+healthy/);
    expect(r.stdout).toMatch(/Bad\s+22222222\S+\s+live\s+UNHEALTHY.*HTTP_STATUS/);
    expect(r.stdout).toMatch(/Staging\s+33333333\S+\s+test\s+healthy/);
  });

  it('exits 0 when the named connections are healthy', async () => {
    const r = await runCli(['--config', configPath, 'test', '--connection', 'Good', '--connection', TESTMODE]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('Bad');
  });
});

describe('dsr-agent run', () => {
  it('access --json: reports under DIR/<uuid>/, partial status, exit 1, logs on stderr without personal data', async () => {
    const out = join(dir, 'out');
    const r = await runCli(['--config', configPath, 'run', 'access', '--identifier', 'email=peter.gibbons@initech.com', '--out', out, '--json']);
    expect(r.code).toBe(1);
    const result = JSON.parse(r.stdout);
    expect(result.type).toBe('access');
    expect(result.status).toBe('partial');
    const byName = Object.fromEntries(result.connections.map((c: { name: string }) => [c.name, c]));
    expect(byName.Good).toMatchObject({ uuid: GOOD, status: 'succeeded', reports: [join(out, GOOD, 'report_1.csv'), join(out, GOOD, 'report_2.csv')] });
    expect(byName.Good).toMatchObject({ report_count: 2, report_location: join(out, GOOD) });
    expect(byName.Bad).toMatchObject({ status: 'failed', error: { code: 'HTTP_STATUS' } });
    expect(byName.Staging).toMatchObject({ status: 'skipped' });
    expect(readFileSync(join(out, GOOD, 'report_1.csv'), 'utf8')).toBe('first_name,Peter\nfriends_0,Samir\n');
    expect(r.stderr).not.toContain('peter.gibbons');
    expect(r.stderr).not.toContain(SECRET);
  });

  it('identifiers for named connections only, exit 0', async () => {
    const r = await runCli(['--config', configPath, 'run', 'identifiers', '-i', 'email=a@b.c', '--connection', 'Good', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      type: 'identifiers',
      status: 'succeeded',
      connections: [expect.objectContaining({ uuid: GOOD, name: 'Good', status: 'succeeded', identifiers: { user_id: ['u-1'] } })],
    });
  });

  it('--dry-run prints the requests with secrets masked and sends nothing', async () => {
    const before = target.received.length;
    const r = await runCli(['--config', configPath, 'run', 'delete', '-i', 'email=a@b.c', '--connection', 'Good', '--dry-run']);
    expect(r.code).toBe(0);
    expect(target.received.length).toBe(before);
    const plan = JSON.parse(r.stdout);
    expect(plan.requests[0].request).toEqual({
      method: 'DELETE',
      url: `${target.url}/users`,
      headers: { Authorization: 'Basic ****', 'Content-Type': 'application/json' },
      body: '{"email": "a@b.c"}',
    });
    expect(r.stdout).not.toContain(SECRET);
  });

  it.each([
    [['run', 'purge', '-i', 'email=a@b.c'], /unknown request type 'purge'/],
    [['run', 'access'], /--identifier/],
    [['run', 'delete', '-i', 'novalue'], /KEY=VALUE/],
    [['run', 'delete', '-i', 'email=a@b.c', '--connection', 'Nope'], /CONNECTION_NOT_FOUND/],
    [['frobnicate'], /unknown command/],
  ])('bad usage %j exits 2 and says what to fix', async (args, message) => {
    const r = await runCli(['--config', configPath, ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
