import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CLIENT_ID = 'datagrail';
export const CLIENT_SECRET = 'service-test-client-secret';
export const USER_UUID = '44d9e703-b8cf-40a8-a138-3cc110319b0d';

/** Write a service config (one "User Service" connection at `targetUrl`) and its JSONFile secrets into a temp dir. */
export function writeServiceConfig(targetUrl: string, top: Record<string, unknown> = {}): { dir: string; configPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dsr-svc-'));
  writeFileSync(
    join(dir, 'secrets.json'),
    JSON.stringify({ svc: { credentials: 'dXNlcjpwYXNz' }, api: { client_id: CLIENT_ID, client_secret: CLIENT_SECRET }, cb: { token: 'cb-token' } }),
  );
  const q = (path: string, extra: Record<string, unknown> = {}) => ({ url: `${targetUrl}${path}`, verb: 'GET', verify_ssl: 'true', headers: { Authorization: 'Basic {credentials}' }, ...extra });
  const config = {
    datagrail_agent_credentials_location: 'api',
    datagrail_credentials_location: 'cb',
    platform: { credentials_manager: { provider: 'JSONFile', options: { filename: 'secrets.json' } } },
    connections: [
      {
        name: 'User Service',
        uuid: USER_UUID,
        capabilities: ['privacy/access', 'privacy/delete'],
        mode: 'live',
        connector_type: 'APIProxy',
        queries: { test: [q('/health')], access: [q('/users?email={email}')], delete: [q('/users?email={email}', { verb: 'DELETE' })] },
        credentials_location: 'svc',
      },
    ],
    ...top,
    agent: { readiness_interval_seconds: 1, ...(top.agent as object) },
  };
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(config));
  return { dir, configPath };
}
