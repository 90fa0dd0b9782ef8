/** `dsr-agent sources check` and `sources poll --once [--dry-run]` against a fake Dastra, through the built CLI. */
import { describe, it, expect, afterEach } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTarget, json } from './helpers/target.js';
import { startDastraFake, type DastraFake } from './helpers/fakes/dastra.js';

const run = promisify(execFile);
const CLI = join(process.cwd(), 'dist/cli.js');
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(): Promise<{ dir: string; config: string; dastra: DastraFake }> {
  const dastra = await startDastraFake();
  cleanups.push(() => dastra.close());
  const target = await startTarget((req, res) => json(res, 200, req.method === 'GET' ? [{ plan: 'gold' }] : {}));
  cleanups.push(() => target.close());
  const dir = mkdtempSync(join(tmpdir(), 'dsr-cli-src-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'secrets.json'), JSON.stringify({ svc: { k: 'v' }, dastra: { authorization: dastra.authorization } }));
  const q = (verb: string) => ({ url: `${target.url}/users?email={email}`, verb, verify_ssl: 'true' });
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      platform: { credentials_manager: { provider: 'JSONFile', options: { filename: 'secrets.json' } } },
      connections: [
        {
          name: 'CRM', uuid: '00000000-0000-4000-8000-0000000000c1', capabilities: ['privacy/access', 'privacy/delete'], mode: 'live', connector_type: 'APIProxy',
          queries: { test: [q('GET')], access: [q('GET')], delete: [q('DELETE')] }, credentials_location: 'svc',
        },
      ],
      request_sources: [
        { name: 'dastra', type: 'Dastra', credentials_location: 'dastra', headers: { Authorization: '{authorization}' }, options: { base_url: dastra.url, workspace_id: dastra.workspaceId, state_when_done: 'Closed' } },
      ],
    }),
  );
  return { dir, config: join(dir, 'config.json'), dastra };
}

const cli = (config: string, dir: string, ...args: string[]) =>
  run(process.execPath, [CLI, '--config', config, ...args], { env: { PATH: process.env.PATH!, DSR_AGENT_DATA_DIR: join(dir, 'data'), LOGLEVEL: 'WARNING' } });

describe('dsr-agent sources', () => {
  it('check counts eligible requests per job type, without personal data', async () => {
    const { dir, config, dastra } = await setup();
    dastra.addRequest({ email: 'peter@initech.example', purposes: ['Access', 'Erasure'], identityValidated: true, state: 'Open' });
    dastra.addRequest({ email: '', phoneNumber: '', userId: '', purposes: ['Access'], identityValidated: true, state: 'Open' });
    const { stdout } = await cli(config, dir, 'sources', 'check');
    expect(JSON.parse(stdout)).toEqual({ ok: true, sources: [{ source: 'dastra', type: 'Dastra', ok: true, requests: 2, access: 1, delete: 1, optout: 0, identifiers: 0, needs_attention: 1 }] });
    expect(stdout).not.toContain('peter@initech.example');
  });

  it('poll --once --dry-run lists the jobs it would start and sends nothing; poll --once runs them and writes back', async () => {
    const { dir, config, dastra } = await setup();
    const a = dastra.addRequest({ email: 'peter@initech.example', purposes: ['Access'], identityValidated: true, state: 'Open' });
    const dry = JSON.parse((await cli(config, dir, 'sources', 'poll', '--once', '--dry-run')).stdout);
    expect(dry.sources[0].requests).toEqual([{ request: String(a.id), already_written_back: false, jobs: [{ job_id: `dastra.${a.id}.access`, type: 'access', identifiers: ['email'] }] }]);
    expect(JSON.stringify(dry)).not.toContain('peter@initech.example');
    expect(dastra.count('update')).toBe(0);

    const real = JSON.parse((await cli(config, dir, 'sources', 'poll', '--once')).stdout);
    expect(real.sources[0]).toMatchObject({ source: 'dastra', ok: true, taken: 1, written_back: 1, waiting: 0 });
    expect(dastra.request(a.id)!.state).toBe('Closed');
    // A second round: already written back, nothing runs again.
    const again = JSON.parse((await cli(config, dir, 'sources', 'poll', '--once')).stdout);
    expect(again.sources[0]).toMatchObject({ taken: 0, written_back: 0 });
    expect(dastra.count('update')).toBe(1);
  }, 60_000);
});
