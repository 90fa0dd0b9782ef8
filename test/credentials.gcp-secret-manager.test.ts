import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { gcpSecretManagerProvider, makeGcpSecretManagerSource, secretManagerBaseUrl, secretVersionName } from '../src/credentials/gcp-secret-manager.js';
import type { CredentialsProviderContext } from '../src/credentials/provider.js';
import { makeSecretsCache } from '../src/credentials/source.js';
import { readEnv } from '../src/env.js';
import { errorText, LEAK, rejection } from './helpers/credentials.js';
import { makeServiceAccount, startFakeGcp, type FakeGcp } from './helpers/gcp-servers.js';
import { makeSelfSignedCert } from './helpers/target.js';
import { trustCertificate } from './helpers/trust-ca.js';

/** A provider context whose environment holds the fake's service-account key and endpoint. */
function contextFor(fake: FakeGcp, overrides: Record<string, string> = {}): CredentialsProviderContext {
  return {
    baseDir: '/unused',
    env: readEnv({
      GOOGLE_APPLICATION_CREDENTIALS_JSON: JSON.stringify(fake.account.json),
      GCP_SECRET_MANAGER_ENDPOINT: fake.endpoint,
      ...overrides,
    }),
  };
}

/** Everything secret the test run holds: stored values, the private key, issued access tokens. */
function expectNoCredentials(fake: FakeGcp, text: string): void {
  expect(text).not.toContain(LEAK);
  expect(text).not.toContain('PRIVATE KEY');
  for (const token of fake.issued) expect(text).not.toContain(token);
}

describe('GCP Secret Manager against token and Secret Manager endpoints (HTTPS)', () => {
  let fake: FakeGcp;
  let untrust: () => void;

  beforeAll(async () => {
    const tls = makeSelfSignedCert();
    untrust = trustCertificate(tls.cert);
    fake = await startFakeGcp(
      {
        'acme-prod/api-basic': { credentials: 'dXNlcjpwYXNz', port: 8443, verify: true },
        'other-project/shared': { token: 'from-full-path' },
        'acme-prod/not-json': `${LEAK}=credentials`,
        'acme-prod/array': [LEAK],
        'acme-prod/nested': { credentials: { inner: LEAK } },
        'acme-prod/binary': Buffer.from([0xff, 0xfe, 0x80]),
        'acme-prod/denied': { credentials: LEAK },
        'acme-prod/slow': { credentials: LEAK },
      },
      tls,
    );
    fake.deny.add('projects/acme-prod/secrets/denied');
    fake.hang.add('projects/acme-prod/secrets/slow');
  });

  afterAll(async () => {
    await fake.close();
    untrust();
  });

  it('exchanges a signed JWT at the key\'s token_uri and reads a bare secret name from project_id', async () => {
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake));
    const before = fake.requests.length;
    const secret = await source.get('api-basic');
    expect({ ...secret }).toEqual({ credentials: 'dXNlcjpwYXNz', port: '8443', verify: 'true' });
    expect(Object.isFrozen(secret)).toBe(true);
    expect('constructor' in secret).toBe(false);

    const seen = fake.requests.slice(before);
    expect(seen.map((r) => `${r.server} ${r.method} ${r.path}`)).toEqual([
      'token POST /token',
      'secretmanager GET /v1/projects/acme-prod/secrets/api-basic/versions/latest:access',
    ]);
    const bearer = seen[1].authorization?.replace(/^Bearer /, '') ?? '';
    expect(fake.issued.has(bearer)).toBe(true);
  });

  it('reads a full resource name, a given version, and a secret path without a version, reusing the token', async () => {
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake));
    expect((await source.get('projects/other-project/secrets/shared/versions/latest')).token).toBe('from-full-path');
    const tokens = fake.issued.size;
    fake.set('acme-prod', 'versioned', { credentials: 'v1' });
    fake.set('acme-prod', 'versioned', { credentials: 'v2' });
    expect((await source.get('projects/acme-prod/secrets/versioned/versions/1')).credentials).toBe('v1');
    expect((await source.get('projects/acme-prod/secrets/versioned')).credentials).toBe('v2');
    expect(fake.issued.size).toBe(tokens);
  });

  it('maps NOT_FOUND (404) to SECRET_NOT_FOUND naming location, resource and provider', async () => {
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake));
    const err = await rejection(source.get('no-such-secret'));
    expect(err.code).toBe('SECRET_NOT_FOUND');
    expect(err.message).toContain('GCP: there is no secret at no-such-secret (projects/acme-prod/secrets/no-such-secret/versions/latest)');
    expect(err.message).toContain('project_id');
    expect((await rejection(source.get('projects/acme-prod/secrets/api-basic/versions/7'))).code).toBe('SECRET_NOT_FOUND');
  });

  it('rejects a location that is neither a secret id nor a resource name without calling the service', async () => {
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake));
    await source.get('api-basic'); // load the SDK and get a token first
    const before = fake.requests.length;
    const err = await rejection(source.get('arn:aws:secretsmanager:us-east-1:1:secret:x'));
    expect(err.code).toBe('SECRET_NOT_FOUND');
    expect(err.message).toContain('projects/<project>/secrets/<id>[/versions/<version>]');
    expect(fake.requests.length).toBe(before);
  });

  it('maps PERMISSION_DENIED (403) to SECRET_ACCESS_DENIED naming the role, without secrets or tokens', async () => {
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake));
    const err = await rejection(source.get('denied'));
    expect(err.code).toBe('SECRET_ACCESS_DENIED');
    expect(err.message).toContain('denied');
    expect(err.message).toContain('PERMISSION_DENIED');
    expect(err.message).toContain("Permission 'secretmanager.versions.access' denied");
    expect(err.message).toContain('roles/secretmanager.secretAccessor');
    expectNoCredentials(fake, errorText(err));
  });

  it('maps a key the token endpoint refuses to SECRET_ACCESS_DENIED, without the key or the assertion', async () => {
    // Same account e-mail and token_uri, another private key: the signature does not verify.
    const impostor = { ...makeServiceAccount(fake.tokenUri).json, client_email: fake.account.json.client_email };
    const source = gcpSecretManagerProvider.make(
      { project_id: 'acme-prod' },
      contextFor(fake, { GOOGLE_APPLICATION_CREDENTIALS_JSON: JSON.stringify(impostor) }),
    );
    const err = await rejection(source.get('api-basic'));
    expect(err.code).toBe('SECRET_ACCESS_DENIED');
    expect(err.message).toContain('Google rejected the agent\'s credentials');
    expect(err.message).toContain('invalid_grant');
    expectNoCredentials(fake, errorText(err));
    expect(errorText(err)).not.toMatch(/eyJ[\w-]+\.[\w-]+\./); // no JWT
  });

  it.each([
    ['not-json', 'not valid JSON'],
    ['array', 'it is an array'],
    ['nested', 'the value of key "credentials" is an object'],
    ['binary', 'its payload is not UTF-8 text'],
  ])('rejects %s with SECRET_INVALID, without quoting the secret', async (location, reason) => {
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake));
    const err = await rejection(source.get(location));
    expect(err.code).toBe('SECRET_INVALID');
    expect(err.message).toContain(`GCP: the secret at ${location} must be a JSON object of strings`);
    expect(err.message).toContain(reason);
    expectNoCredentials(fake, errorText(err));
  });

  it('retries a 503 and then reads the secret', async () => {
    const unavailable = JSON.stringify({ error: { code: 503, message: 'The service is currently unavailable.', status: 'UNAVAILABLE' } });
    fake.scripted.set('projects/acme-prod/secrets/api-basic', [{ status: 503, body: unavailable }]);
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake));
    expect((await source.get('api-basic')).credentials).toBe('dXNlcjpwYXNz');
    expect(fake.scripted.get('projects/acme-prod/secrets/api-basic')).toEqual([]);
  });

  it('maps an answer that is not Secret Manager\'s JSON, or fails its checksum, to SECRET_PROVIDER_ERROR without quoting it', async () => {
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake));
    fake.scripted.set('projects/acme-prod/secrets/api-basic', [{ status: 200, body: `{"payload": {"data": ${LEAK}}` }]);
    const malformed = await rejection(source.get('api-basic'));
    expect(malformed.code).toBe('SECRET_PROVIDER_ERROR');
    expect(malformed.message).toContain('not an AccessSecretVersion response');
    expectNoCredentials(fake, errorText(malformed));

    const data = Buffer.from(JSON.stringify({ credentials: LEAK })).toString('base64');
    fake.scripted.set('projects/acme-prod/secrets/api-basic', [{ status: 200, body: JSON.stringify({ name: 'x', payload: { data, dataCrc32c: '12345' } }) }]);
    const corrupt = await rejection(source.get('api-basic'));
    expect(corrupt.code).toBe('SECRET_PROVIDER_ERROR');
    expect(corrupt.message).toContain('does not match its checksum');
    expectNoCredentials(fake, errorText(corrupt));
  });

  it('maps a key whose private_key cannot sign to SECRET_PROVIDER_ERROR, without the key', async () => {
    const broken = { ...fake.account.json, private_key: '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n' };
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake, { GOOGLE_APPLICATION_CREDENTIALS_JSON: JSON.stringify(broken) }));
    const err = await rejection(source.get('api-basic'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain('private_key is not a valid PEM key');
    expect(errorText(err)).not.toContain('bm90IGEga2V5');

    const incomplete = { type: 'service_account', private_key: fake.account.json.private_key };
    const other = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake, { GOOGLE_APPLICATION_CREDENTIALS_JSON: JSON.stringify(incomplete) }));
    const missing = await rejection(other.get('api-basic'));
    expect(missing.code).toBe('SECRET_PROVIDER_ERROR');
    expect(missing.message).toContain('does not contain a client_email field');
    expect(errorText(missing)).not.toContain('PRIVATE KEY');
  });

  it('picks up a rotated secret once the cache TTL has passed', async () => {
    fake.set('acme-prod', 'rotating', { credentials: 'before-rotation' });
    const cache = makeSecretsCache(gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake)), { ttlMs: 200 });
    expect((await cache.get('rotating')).credentials).toBe('before-rotation');
    fake.set('acme-prod', 'rotating', { credentials: 'after-rotation' });
    expect((await cache.get('rotating')).credentials).toBe('before-rotation'); // still cached
    const deadline = Date.now() + 10_000;
    let seen = '';
    while (Date.now() < deadline) {
      seen = (await cache.get('rotating')).credentials;
      if (seen === 'after-rotation') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(seen).toBe('after-rotation');
  });

  it('reads the key from GOOGLE_APPLICATION_CREDENTIALS (a file path)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dsr-gcp-key-'));
    try {
      const file = join(dir, 'key.json');
      writeFileSync(file, JSON.stringify(fake.account.json));
      const ctx: CredentialsProviderContext = {
        baseDir: '/unused',
        env: readEnv({ GOOGLE_APPLICATION_CREDENTIALS: file, GCP_SECRET_MANAGER_ENDPOINT: fake.endpoint }),
      };
      expect((await gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, ctx).get('api-basic')).credentials).toBe('dXNlcjpwYXNz');

      const missing = readEnv({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'missing.json'), GCP_SECRET_MANAGER_ENDPOINT: fake.endpoint });
      const err = await rejection(gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, { baseDir: '/unused', env: missing }).get('api-basic'));
      expect(err.code).toBe('SECRET_PROVIDER_ERROR');
      expect(err.message).toContain('missing.json (ENOENT)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses GOOGLE_APPLICATION_CREDENTIALS_JSON that is not JSON, without quoting it', async () => {
    const text = fake.account.json.private_key.slice(0, 200);
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake, { GOOGLE_APPLICATION_CREDENTIALS_JSON: text }));
    const err = await rejection(source.get('api-basic'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain('GOOGLE_APPLICATION_CREDENTIALS_JSON is not valid JSON');
    expect(errorText(err)).not.toContain('PRIVATE KEY');
  });

  it('gives up after timeoutMs when Secret Manager never answers', async () => {
    const started = performance.now();
    const source = makeGcpSecretManagerSource({ projectId: 'acme-prod', gcp: contextFor(fake).env.gcp, timeoutMs: 500 });
    const err = await rejection(source.get('slow'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain('no answer within 0.5 s');
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe('GCP Secret Manager over plain HTTP', () => {
  it('reads a secret, and maps an unreachable endpoint to SECRET_PROVIDER_ERROR', async () => {
    const fake = await startFakeGcp({ 'acme-prod/api-basic': { credentials: 'over-http' } });
    try {
      const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake));
      expect((await source.get('api-basic')).credentials).toBe('over-http');
    } finally {
      await fake.close();
    }
    const source = gcpSecretManagerProvider.make({ project_id: 'acme-prod' }, contextFor(fake));
    const err = await rejection(source.get('api-basic'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.message).toContain('api-basic');
  });
});

describe('GCP options and locations', () => {
  it('turns a credentials_location into a secret version name', () => {
    expect(secretVersionName('api-basic', 'acme-prod')).toBe('projects/acme-prod/secrets/api-basic/versions/latest');
    expect(secretVersionName('projects/p1/secrets/s_1/versions/3', 'acme-prod')).toBe('projects/p1/secrets/s_1/versions/3');
    expect(secretVersionName('projects/p1/secrets/s', 'acme-prod')).toBe('projects/p1/secrets/s/versions/latest');
    expect(secretVersionName('projects/p1/locations/europe-west1/secrets/s/versions/2', 'x')).toBe(
      'projects/p1/locations/europe-west1/secrets/s/versions/2',
    );
    expect(secretVersionName('api/basic', 'acme-prod')).toBeUndefined();
    expect(secretVersionName('projects/p1/secrets/s/versions/', 'acme-prod')).toBeUndefined();
  });

  it('reads from GCP_SECRET_MANAGER_ENDPOINT, else the regional or global endpoint', () => {
    const regional = 'projects/p1/locations/europe-west1/secrets/s/versions/2';
    expect(secretManagerBaseUrl('projects/p1/secrets/s/versions/latest')).toBe('https://secretmanager.googleapis.com');
    expect(secretManagerBaseUrl(regional)).toBe('https://secretmanager.europe-west1.rep.googleapis.com');
    expect(secretManagerBaseUrl(regional, 'http://127.0.0.1:8085/')).toBe('http://127.0.0.1:8085');
    expect(secretManagerBaseUrl(regional, 'secretmanager.me-central2.rep.googleapis.com')).toBe('https://secretmanager.me-central2.rep.googleapis.com');
    expect(() => secretManagerBaseUrl(regional, 'http://127.0.0.1:8085/v1')).toThrow('GCP_SECRET_MANAGER_ENDPOINT');
  });

  it('accepts a project id or number', () => {
    expect(gcpSecretManagerProvider.name).toBe('GCP');
    expect(gcpSecretManagerProvider.check({ project_id: 'acme-prod' })).toEqual([]);
    expect(gcpSecretManagerProvider.check({ project_id: '123456789012' })).toEqual([]);
  });

  it('requires project_id', () => {
    expect(gcpSecretManagerProvider.check({})).toEqual([
      { field: 'project_id', message: expect.stringContaining('is required for GCP') },
    ]);
  });

  it('refuses a project_id of the wrong type or shape', () => {
    expect(gcpSecretManagerProvider.check({ project_id: ['acme-prod'] })).toEqual([
      { field: 'project_id', message: expect.stringContaining('must be a non-empty string') },
    ]);
    expect(gcpSecretManagerProvider.check({ project_id: 'Acme Prod' })).toEqual([
      { field: 'project_id', message: expect.stringContaining('must be a Google Cloud project id') },
    ]);
  });

  it('refuses an unknown option, naming the known ones', () => {
    expect(gcpSecretManagerProvider.check({ project_id: 'acme-prod', secret_vault: 'x' })).toEqual([
      { field: 'secret_vault', message: expect.stringContaining('is not an option of GCP; remove it (known options: project_id)') },
    ]);
  });
});
