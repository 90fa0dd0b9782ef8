import { describe, it, expect, afterEach } from '@jest/globals';
import { startTarget, json, type Target } from './helpers/target.js';
import { makeTestAgent, connection, query, type TestAgent } from './helpers/agent.js';
import { startSecretsManager, type FakeSecretsManager } from './helpers/secrets-manager-server.js';

let target: Target | undefined;
let agent: TestAgent | undefined;
let sm: FakeSecretsManager | undefined;
const saved = { ...process.env };
afterEach(async () => {
  await agent?.close();
  await target?.close();
  await sm?.close();
  agent = target = sm = undefined;
  process.env = { ...saved };
});

const SECRET = 'c2VjcmV0LXVzZXI6aHVudGVyMg==';

describe('credentials in the engine', () => {
  it('reads the secret from AWS Secrets Manager (real SDK) and never logs it or the identifier', async () => {
    sm = await startSecretsManager({ 'arn:aws:secretsmanager:us-east-1:123:secret:svc': JSON.stringify({ credentials: SECRET }) });
    Object.assign(process.env, { AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
    target = await startTarget((_req, res) => json(res, 200, [{ name: 'Peter' }]));
    agent = makeTestAgent([connection({ access: [query(`${target.url}/u?email={email}`)] }, { credentials_location: 'arn:aws:secretsmanager:us-east-1:123:secret:svc' })], {
      top: { platform: { credentials_manager: { provider: 'AWSSecretsManager' } } },
    });
    const result = await agent.engine.run({ type: 'access', identifiers: { email: 'peter.gibbons@initech.com' } }, { sink: { put: async (_u, n) => String(n) } });
    expect(result.status).toBe('succeeded');
    expect(target.received[0]!.headers.authorization).toBe(`Basic ${SECRET}`);
    const logs = agent.logs.lines().join('\n');
    expect(logs).toContain('query succeeded');
    expect(logs).not.toContain(SECRET);
    expect(logs).not.toContain('peter.gibbons');
    expect(logs).not.toContain('initech.com');
  });

  it('fails the connection with SECRET_NOT_FOUND when the secret is missing', async () => {
    sm = await startSecretsManager({});
    Object.assign(process.env, { AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
    target = await startTarget((_req, res) => json(res, 200, {}));
    agent = makeTestAgent([connection({ delete: [query(`${target.url}/d`, { verb: 'DELETE' })] }, { credentials_location: 'missing-secret' })], {
      top: { platform: { credentials_manager: { provider: 'AWSSecretsManager' } } },
    });
    const result = await agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(result.connections[0]!.error?.code).toBe('SECRET_NOT_FOUND');
    expect(target.received).toHaveLength(0);
  });

  it('on 401 refreshes a rotated secret once and retries once', async () => {
    target = await startTarget((req, res) => json(res, req.headers.authorization === 'Bearer new-token' ? 200 : 401, {}));
    agent = makeTestAgent([connection({ delete: [query(`${target.url}/d`, { verb: 'DELETE', headers: { Authorization: 'Bearer {token}' } })] })], {
      secrets: { default: { token: 'old-token' } },
    });
    // Warm the cache with the old secret, then rotate it.
    const first = await agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(first.connections[0]!.error?.code).toBe('HTTP_STATUS'); // 401 twice: refreshed once, still old
    agent.setSecrets({ default: { token: 'new-token' } });
    const second = await agent.engine.run({ type: 'delete', identifiers: { email: 'a@b.c' } });
    expect(second.status).toBe('succeeded');
    expect(target.received.map((r) => r.headers.authorization)).toEqual(['Bearer old-token', 'Bearer old-token', 'Bearer old-token', 'Bearer new-token']);
  });
});
