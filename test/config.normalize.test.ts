import type { APIProxyConnection } from '../src/config/types.js';
import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { validateConfig } from '../src/config/validate.js';
import type { AgentConfig } from '../src/config/types.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/config/${name}`, import.meta.url), 'utf8'));
const wrap = (...connections: unknown[]) => ({ ...fixture('minimal.json'), connections });

describe('defaults', () => {
  it('job_timeout_seconds, the agent options and the query status lists get their defaults', () => {
    const config = validateConfig(wrap(fixture('seed-connection.json')));
    expect(config.job_timeout_seconds).toBe(300);
    expect(config.agent).toEqual({
      connection_concurrency: 8,
      job_concurrency: 4,
      max_object_bytes: 67108864,
      secret_cache_ttl_seconds: 300,
      retries: 3,
      retry_min_delay_ms: 1000,
      retry_max_delay_ms: 30000,
      readiness_interval_seconds: 60,
      shutdown_grace_seconds: 30,
      job_lock_seconds: 30,
      queue_name: 'dsr-agent',
      metrics_require_auth: false,
      token_audience: 'dsr-agent-api',
      http_request_timeout_seconds: 30,
      http_max_connections: 1024,
      retention_days: 30,
    });
    const testQuery = (config.connections[0] as APIProxyConnection).queries.test![0];
    expect(testQuery.valid_response_codes).toEqual([200]);
    expect(testQuery.fail_retry_response_codes).toEqual([]);
    expect((config.connections[0] as APIProxyConnection).queries.delete![0].valid_response_codes).toEqual([200, 404]);
  });

  it('given agent options win over defaults, one by one', () => {
    const config = validateConfig({ ...wrap(fixture('seed-connection.json')), job_timeout_seconds: 60, agent: { retries: 0, secret_cache_ttl_seconds: 0 } });
    expect(config.job_timeout_seconds).toBe(60);
    expect(config.agent.retries).toBe(0);
    expect(config.agent.secret_cache_ttl_seconds).toBe(0);
    expect(config.agent.job_concurrency).toBe(4);
  });

  it('optional top-level fields stay absent when not given', () => {
    const config = validateConfig(wrap(fixture('seed-connection.json')));
    for (const key of ['customer_domain', 'redis_url', 'callback_url', 'datagrail_credentials_location']) expect(key in config).toBe(false);
    expect('storage_manager' in config.platform).toBe(false);
  });
});

describe('normalisation', () => {
  it('credentials_arn becomes credentials_location', () => {
    const c = fixture('seed-connection.json');
    c.credentials_arn = c.credentials_location;
    delete c.credentials_location;
    const out = validateConfig(wrap(c)).connections[0];
    expect(out.credentials_location).toBe('arn:aws:secretsmanager:Region:AccountId:secret:datagrail-apiproxy');
    expect('credentials_arn' in out).toBe(false);
    const both = { ...fixture('seed-connection.json'), credentials_arn: c.credentials_arn };
    expect('credentials_arn' in validateConfig(wrap(both)).connections[0]).toBe(false);
  });

  it('verb is upper-cased and verify_ssl booleans become strings', () => {
    const config = validateConfig(fixture('realistic.json'));
    const test0 = (config.connections[0] as APIProxyConnection).queries.test![0];
    expect(test0.verb).toBe('GET');
    expect(test0.verify_ssl).toBe('true');
    expect((config.connections[1] as APIProxyConnection).queries.test![0].verify_ssl).toBe('false');
    const c = fixture('seed-connection.json');
    c.queries.access[0].verb = 'Patch';
    c.queries.access[0].verify_ssl = false;
    const q = (validateConfig(wrap(c)).connections[0] as APIProxyConnection).queries.access![0];
    expect(q.verb).toBe('PATCH');
    expect(q.verify_ssl).toBe('false');
  });

  it('does not change its input, and the output shares nothing with it', () => {
    const raw = fixture('realistic.json');
    const before = JSON.stringify(raw);
    const config = validateConfig(raw);
    expect(JSON.stringify(raw)).toBe(before);
    raw.platform.credentials_manager.options.filename = 'changed.json';
    raw.connections[0].queries.access[0].headers.Authorization = 'changed';
    expect(config.platform.credentials_manager.options).toEqual({ filename: 'secrets.json' });
    expect((config.connections[0] as APIProxyConnection).queries.access![0].headers!.Authorization).toBe('Bearer {token}');
  });
});

describe('the result is deep-frozen', () => {
  const config: AgentConfig = validateConfig(fixture('realistic.json'));
  const mutations: Array<[string, () => void]> = [
    ['a top-level field', () => ((config as any).job_timeout_seconds = 1)],
    ['the agent options', () => ((config as any).agent.retries = 99)],
    ['the connections list', () => (config.connections as any[]).push({})],
    ['a connection', () => ((config.connections[0] as any).name = 'x')],
    ['a query list', () => ((config.connections[0] as APIProxyConnection).queries.access as any[]).pop()],
    ['a header', () => (((config.connections[0] as APIProxyConnection).queries.access![0].headers as any).Authorization = 'x')],
    ['a status list', () => ((config.connections[0] as APIProxyConnection).queries.access![0].valid_response_codes as number[]).push(500)],
    ['an identifier map', () => (((config.connections[0] as APIProxyConnection).queries.identifiers as any).email = [])],
    ['provider options', () => ((config.platform.credentials_manager.options as any).filename = 'x')],
    ['the platform', () => delete (config.platform as any).storage_manager],
  ];
  it.each(mutations)('changing %s throws (strict mode)', (_name, mutate) => {
    expect(mutate).toThrow(TypeError);
  });
  it('and nothing changed', () => {
    expect(config).toEqual(validateConfig(fixture('realistic.json')));
  });
});
