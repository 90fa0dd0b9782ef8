import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { azureKeyVaultProvider, keyVaultUrl, makeAzureKeyVaultSource } from '../src/credentials/azure-key-vault.js';
import type { CredentialsProviderContext } from '../src/credentials/provider.js';
import { makeSecretsCache } from '../src/credentials/source.js';
import { readEnv } from '../src/env.js';
import {
  CLIENT_ID,
  CLIENT_SECRET,
  IDENTITY_HEADER,
  startFakeAzure,
  TENANT_ID,
  type FakeAzure,
} from './helpers/azure-keyvault-server.js';
import { errorText, LEAK, rejection } from './helpers/credentials.js';
import { makeSelfSignedCert } from './helpers/target.js';
import { trustCertificate } from './helpers/trust-ca.js';

/** A provider context whose environment is a service principal against the fakes. */
function contextFor(fake: FakeAzure, overrides: Record<string, string> = {}): CredentialsProviderContext {
  return {
    baseDir: '/unused',
    env: readEnv({
      AZURE_TENANT_ID: TENANT_ID,
      AZURE_CLIENT_ID: CLIENT_ID,
      AZURE_CLIENT_SECRET: CLIENT_SECRET,
      AZURE_AUTHORITY_HOST: fake.authorityHost,
      AZURE_KEYVAULT_URL: fake.vaultUrl,
      ...overrides,
    }),
  };
}

describe('AzureKeyVault against Key Vault and Entra ID endpoints', () => {
  let fake: FakeAzure;
  let untrust: () => void;

  beforeAll(async () => {
    const tls = makeSelfSignedCert();
    untrust = trustCertificate(tls.cert);
    fake = await startFakeAzure(tls, {
      'api-basic': { credentials: 'dXNlcjpwYXNz', port: 8443, verify: true },
      'not-json': `${LEAK}=credentials`,
      'array': [LEAK],
      'nested': { credentials: { inner: LEAK } },
      'denied': { credentials: LEAK },
    });
    fake.deny.add('denied');
  });

  afterAll(async () => {
    await fake.close();
    untrust();
  });

  it('answers the bearer challenge with a client-secret token and returns the secret', async () => {
    const source = azureKeyVaultProvider.make({ secret_vault: 'acme-secrets' }, contextFor(fake));
    const before = fake.requests.length;
    const secret = await source.get('api-basic');
    expect({ ...secret }).toEqual({ credentials: 'dXNlcjpwYXNz', port: '8443', verify: 'true' });
    expect(Object.isFrozen(secret)).toBe(true);
    expect('constructor' in secret).toBe(false);

    const seen = fake.requests.slice(before);
    const vaultCalls = seen.filter((r) => r.server === 'vault');
    // The challenge: first unauthenticated, then with the token from the token endpoint.
    expect(vaultCalls.map((r) => r.authorization === undefined)).toEqual([true, false]);
    expect(vaultCalls[1].authorization).toMatch(/^Bearer kv-/);
    expect(seen.some((r) => r.server === 'login' && r.path === `/${TENANT_ID}/oauth2/v2.0/token`)).toBe(true);
  });

  it('reads a given version (name/version) and reuses its token for later reads', async () => {
    const first = fake.set('versioned', { credentials: 'v1' });
    fake.set('versioned', { credentials: 'v2' });
    const source = azureKeyVaultProvider.make({ secret_vault: 'acme-secrets' }, contextFor(fake));
    expect((await source.get('versioned')).credentials).toBe('v2');
    const tokens = fake.tokensIssued();
    expect((await source.get(`versioned/${first}`)).credentials).toBe('v1');
    expect(fake.tokensIssued()).toBe(tokens);
  });

  it('maps 404 SecretNotFound to SECRET_NOT_FOUND naming location, vault and provider', async () => {
    const source = azureKeyVaultProvider.make({ secret_vault: 'acme-secrets' }, contextFor(fake));
    const err = await rejection(source.get('no-such-secret'));
    expect(err.code).toBe('SECRET_NOT_FOUND');
    expect(err.message).toContain('no-such-secret');
    expect(err.message).toContain('AzureKeyVault');
    expect(err.message).toContain(fake.vaultUrl);
    expect((await rejection(source.get('api-basic/0123456789abcdef0123456789abcdef'))).code).toBe('SECRET_NOT_FOUND');
  });

  it('rejects a location that cannot be a secret name without calling the vault', async () => {
    const source = azureKeyVaultProvider.make({ secret_vault: 'acme-secrets' }, contextFor(fake));
    const before = fake.requests.length;
    const err = await rejection(source.get('api/basic/extra'));
    expect(err.code).toBe('SECRET_NOT_FOUND');
    expect(err.message).toContain('optionally followed by /<version>');
    expect(fake.requests.length).toBe(before);
  });

  it('maps 403 Forbidden to SECRET_ACCESS_DENIED naming the role to grant, without the value', async () => {
    const source = azureKeyVaultProvider.make({ secret_vault: 'acme-secrets' }, contextFor(fake));
    const err = await rejection(source.get('denied'));
    expect(err.code).toBe('SECRET_ACCESS_DENIED');
    expect(err.message).toContain('denied');
    expect(err.message).toContain('HTTP 403');
    expect(err.message).toContain('Key Vault Secrets User');
    expect(errorText(err)).not.toContain(LEAK);
  });

  it('maps a client secret Entra ID rejects to SECRET_ACCESS_DENIED, without the client secret', async () => {
    const source = azureKeyVaultProvider.make({ secret_vault: 'acme-secrets' }, contextFor(fake, { AZURE_CLIENT_SECRET: 'wrong-secret-value' }));
    const err = await rejection(source.get('api-basic'));
    expect(err.code).toBe('SECRET_ACCESS_DENIED');
    expect(err.message).toContain('Entra ID rejected');
    expect(err.message).toContain('AADSTS7000215');
    expect(errorText(err)).not.toContain('wrong-secret-value');
  });

  it.each([
    ['not-json', 'not valid JSON'],
    ['array', 'it is an array'],
    ['nested', 'the value of key "credentials" is an object'],
  ])('rejects %s with SECRET_INVALID, without quoting the secret', async (location, reason) => {
    const source = azureKeyVaultProvider.make({ secret_vault: 'acme-secrets' }, contextFor(fake));
    const err = await rejection(source.get(location));
    expect(err.code).toBe('SECRET_INVALID');
    expect(err.message).toContain(`AzureKeyVault: the secret at ${location} must be a JSON object of strings`);
    expect(err.message).toContain(reason);
    expect(errorText(err)).not.toContain(LEAK);
  });

  it('maps a malformed answer to SECRET_PROVIDER_ERROR and one without a value to SECRET_INVALID, quoting neither', async () => {
    const source = azureKeyVaultProvider.make({ secret_vault: 'acme-secrets' }, contextFor(fake));
    await source.get('api-basic'); // complete the challenge first
    fake.scripted.set('api-basic', [
      { status: 200, body: `{"value": ${LEAK}` },
      { status: 200, body: JSON.stringify({ id: `${fake.vaultUrl}/secrets/api-basic/0123`, attributes: { enabled: true } }) },
    ]);
    const malformed = await rejection(source.get('api-basic'));
    expect(malformed.code).toBe('SECRET_PROVIDER_ERROR');
    expect(errorText(malformed)).not.toContain(LEAK);
    const empty = await rejection(source.get('api-basic'));
    expect(empty.code).toBe('SECRET_INVALID');
    expect(empty.message).toContain('it has no value');
  });

  it('gives up after timeoutMs when the vault never answers', async () => {
    fake.set('slow', { credentials: LEAK });
    fake.hang.add('slow');
    const started = performance.now();
    const source = makeAzureKeyVaultSource({ vaultUrl: fake.vaultUrl, azure: contextFor(fake).env.azure, timeoutMs: 500 });
    const err = await rejection(source.get('slow'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain('no answer within 0.5 s');
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('picks up a rotated secret once the cache TTL has passed', async () => {
    fake.set('rotating', { credentials: 'before-rotation' });
    const cache = makeSecretsCache(azureKeyVaultProvider.make({ secret_vault: 'acme-secrets' }, contextFor(fake)), { ttlMs: 200 });
    expect((await cache.get('rotating')).credentials).toBe('before-rotation');
    fake.set('rotating', { credentials: 'after-rotation' });
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

  it('uses DefaultAzureCredential (a managed identity) when no service principal is configured', async () => {
    // App Service's managed identity (IDENTITY_ENDPOINT + IDENTITY_HEADER), and nothing DefaultAzureCredential
    // would try before it (environment and workload-identity variables).
    const vars: Record<string, string | undefined> = {
      IDENTITY_ENDPOINT: fake.identityEndpoint,
      IDENTITY_HEADER,
      AZURE_TENANT_ID: undefined,
      AZURE_CLIENT_ID: undefined,
      AZURE_CLIENT_SECRET: undefined,
      AZURE_CLIENT_CERTIFICATE_PATH: undefined,
      AZURE_USERNAME: undefined,
      AZURE_FEDERATED_TOKEN_FILE: undefined,
      MSI_ENDPOINT: undefined,
      MSI_SECRET: undefined,
      IDENTITY_SERVER_THUMBPRINT: undefined,
      IMDS_ENDPOINT: undefined,
    };
    const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
    for (const [name, value] of Object.entries(vars)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    try {
      const ctx: CredentialsProviderContext = { baseDir: '/unused', env: readEnv({ AZURE_KEYVAULT_URL: fake.vaultUrl }) };
      const before = fake.requests.length;
      const secret = await azureKeyVaultProvider.make({ secret_vault: 'acme-secrets' }, ctx).get('api-basic');
      expect(secret.credentials).toBe('dXNlcjpwYXNz');
      expect(fake.requests.slice(before).some((r) => r.path === '/msi/token')).toBe(true);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('maps an unreachable vault to SECRET_PROVIDER_ERROR with the cause', async () => {
    const dead = await startFakeAzure(makeSelfSignedCert());
    await dead.close();
    const source = makeAzureKeyVaultSource({ vaultUrl: dead.vaultUrl, azure: contextFor(fake).env.azure, maxRetries: 0 });
    const err = await rejection(source.get('api-basic'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain('api-basic');
    expect(err.message).toContain(dead.vaultUrl);
    expect(err.cause).toBeInstanceOf(Error);
  });
});

describe('AzureKeyVault options and vault URL', () => {
  it('builds the vault URL from secret_vault, unless AZURE_KEYVAULT_URL overrides it', () => {
    expect(keyVaultUrl('Acme-Secrets')).toBe('https://acme-secrets.vault.azure.net');
    expect(keyVaultUrl('https://acme.vault.azure.cn/')).toBe('https://acme.vault.azure.cn');
    expect(keyVaultUrl('acme-secrets', 'https://127.0.0.1:8443/')).toBe('https://127.0.0.1:8443');
  });

  it('accepts a vault name or URL', () => {
    expect(azureKeyVaultProvider.name).toBe('AzureKeyVault');
    expect(azureKeyVaultProvider.check({ secret_vault: 'acme-secrets' })).toEqual([]);
    expect(azureKeyVaultProvider.check({ secret_vault: 'https://acme-secrets.vault.azure.net' })).toEqual([]);
  });

  it('requires secret_vault', () => {
    const problems = azureKeyVaultProvider.check({});
    expect(problems).toHaveLength(1);
    expect(problems[0].field).toBe('secret_vault');
    expect(problems[0].message).toContain('is required for AzureKeyVault');
  });

  it('refuses a secret_vault of the wrong type or shape', () => {
    expect(azureKeyVaultProvider.check({ secret_vault: 42 })).toEqual([
      { field: 'secret_vault', message: expect.stringContaining('must be a non-empty string') },
    ]);
    expect(azureKeyVaultProvider.check({ secret_vault: 'my vault!' })).toEqual([
      { field: 'secret_vault', message: expect.stringContaining('must be the name of a Key Vault') },
    ]);
    expect(azureKeyVaultProvider.check({ secret_vault: 'http://acme.vault.azure.net' })[0].field).toBe('secret_vault');
  });

  it('refuses an unknown option, naming the known ones', () => {
    expect(azureKeyVaultProvider.check({ secret_vault: 'acme-secrets', region: 'eastus' })).toEqual([
      { field: 'region', message: expect.stringContaining('is not an option of AzureKeyVault; remove it (known options: secret_vault)') },
    ]);
  });
});
