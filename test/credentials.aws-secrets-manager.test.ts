import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { makeAwsSecretsManagerSource } from '../src/credentials/aws-secrets-manager.js';
import { makeSecretsSource } from '../src/credentials/index.js';
import { setAwsTestEnv, startAwsJsonServer } from './helpers/aws-json-server.js';
import { errorText, LEAK, rejection } from './helpers/credentials.js';
import { startSecretsManager, type FakeSecretsManager } from './helpers/secrets-manager-server.js';

describe('AWSSecretsManager against a Secrets Manager endpoint', () => {
  let fake: FakeSecretsManager;
  let restoreEnv: () => void;

  beforeAll(async () => {
    fake = await startSecretsManager({
      'api/basic': { credentials: 'dXNlcjpwYXNz', port: 8443, verify: true },
      'arn:aws:secretsmanager:us-east-1:123456789012:secret:acme-AbCdEf': { token: 'from-arn' },
      'not-json': `${LEAK}=credentials`,
      'truncated-json': `{"credentials": "${LEAK}`,
      'array': [LEAK],
      'nested': { credentials: { inner: LEAK } },
      'null-value': { credentials: null },
      'json-string': JSON.stringify(LEAK),
      'denied': { credentials: LEAK },
    });
    fake.deny.add('denied');
    restoreEnv = setAwsTestEnv({ AWS_ENDPOINT_URL_SECRETS_MANAGER: fake.url });
  });

  afterAll(async () => {
    restoreEnv();
    await fake.close();
  });

  it('returns the secret, numbers and booleans as strings, through makeSecretsSource', async () => {
    const source = makeSecretsSource({ provider: 'AWSSecretsManager' }, '/unused');
    const secret = await source.get('api/basic');
    expect({ ...secret }).toEqual({ credentials: 'dXNlcjpwYXNz', port: '8443', verify: 'true' });
    expect(Object.isFrozen(secret)).toBe(true);
    expect(fake.calls).toContain('api/basic');
  });

  it('fetches by ARN', async () => {
    const secret = await makeAwsSecretsManagerSource().get('arn:aws:secretsmanager:us-east-1:123456789012:secret:acme-AbCdEf');
    expect(secret.token).toBe('from-arn');
  });

  it('has no inherited keys, so a template variable named like an Object method is not found', async () => {
    const secret = await makeAwsSecretsManagerSource().get('api/basic');
    expect('constructor' in secret).toBe(false);
    expect('toString' in secret).toBe(false);
  });

  it('maps ResourceNotFoundException to SECRET_NOT_FOUND naming location, provider and region', async () => {
    const err = await rejection(makeAwsSecretsManagerSource().get('no/such/secret'));
    expect(err.code).toBe('SECRET_NOT_FOUND');
    expect(err.message).toContain('no/such/secret');
    expect(err.message).toContain('AWSSecretsManager');
    expect(err.message).toContain('us-east-1');
  });

  it('maps AccessDeniedException to SECRET_ACCESS_DENIED naming the IAM permission', async () => {
    const err = await rejection(makeAwsSecretsManagerSource().get('denied'));
    expect(err.code).toBe('SECRET_ACCESS_DENIED');
    expect(err.message).toContain('secretsmanager:GetSecretValue on denied');
    expect(errorText(err)).not.toContain(LEAK);
  });

  it('honours options.region from the config', async () => {
    const source = makeSecretsSource({ provider: 'AWSSecretsManager', options: { region: 'eu-west-3' } }, '/unused');
    const err = await rejection(source.get('no/such/secret'));
    expect(err.message).toContain('eu-west-3');
  });

  it.each([
    ['not-json', 'not valid JSON'],
    ['truncated-json', 'not valid JSON'],
    ['array', 'it is an array'],
    ['nested', 'the value of key "credentials" is an object'],
    ['null-value', 'the value of key "credentials" is null'],
    ['json-string', 'it is a string'],
  ])('rejects %s with SECRET_INVALID, without quoting the secret', async (location, reason) => {
    const err = await rejection(makeAwsSecretsManagerSource().get(location));
    expect(err.code).toBe('SECRET_INVALID');
    expect(err.message).toContain(`the secret at ${location} must be a JSON object of strings, e.g. {"credentials": "..."}`);
    expect(err.message).toContain(reason);
    expect(err.message).toContain('AWSSecretsManager');
    expect(errorText(err)).not.toContain(LEAK);
    expect(errorText(err)).not.toContain('Zq9');
  });

  it('maps an unreachable endpoint to SECRET_PROVIDER_ERROR with the cause', async () => {
    const dead = await startSecretsManager();
    await dead.close();
    const restore = setAwsTestEnv({ AWS_ENDPOINT_URL_SECRETS_MANAGER: dead.url, AWS_MAX_ATTEMPTS: '1' });
    try {
      const err = await rejection(makeAwsSecretsManagerSource().get('api/basic'));
      expect(err.code).toBe('SECRET_PROVIDER_ERROR');
      expect(err.message).toContain('ECONNREFUSED');
      expect(err.message).toContain('api/basic');
      expect(err.cause).toBeInstanceOf(Error);
    } finally {
      restore();
    }
  });
});

describe('AWSSecretsManager with unusual answers', () => {
  let restoreEnv: () => void;
  let server: Awaited<ReturnType<typeof startAwsJsonServer>>;

  beforeAll(async () => {
    server = await startAwsJsonServer({
      'secretsmanager.GetSecretValue': (input) => {
        const base = { ARN: 'arn:x', Name: String(input.SecretId), VersionId: 'v1', VersionStages: ['AWSCURRENT'], CreatedDate: 1700000000 };
        switch (input.SecretId) {
          case 'binary':
            return { body: { ...base, SecretBinary: Buffer.from(JSON.stringify({ credentials: 'from-binary' })).toString('base64') } };
          case 'binary-not-utf8':
            return { body: { ...base, SecretBinary: Buffer.from([0xff, 0xfe, 0x80]).toString('base64') } };
          case 'empty':
            return { body: base };
          case 'malformed-body':
            // Unquoted, so V8's SyntaxError message quotes it.
            return { raw: `{"SecretString": ${LEAK}}`, status: 200 };
          case 'throttled':
            return { error: 'ThrottlingException', message: 'Rate exceeded' };
          case 'bad-token':
            return { error: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' };
          case 'hang':
            return { hang: true };
          default:
            return { error: 'ResourceNotFoundException', message: 'not found' };
        }
      },
    });
    restoreEnv = setAwsTestEnv({ AWS_ENDPOINT_URL_SECRETS_MANAGER: server.url, AWS_MAX_ATTEMPTS: '1' });
  });

  afterAll(async () => {
    restoreEnv();
    await server.close();
  });

  it('decodes a SecretBinary as UTF-8 JSON', async () => {
    expect((await makeAwsSecretsManagerSource().get('binary')).credentials).toBe('from-binary');
  });

  it('rejects a SecretBinary that is not UTF-8, and a secret with no value, as SECRET_INVALID', async () => {
    expect((await rejection(makeAwsSecretsManagerSource().get('binary-not-utf8'))).code).toBe('SECRET_INVALID');
    expect((await rejection(makeAwsSecretsManagerSource().get('empty'))).code).toBe('SECRET_INVALID');
  });

  it('maps a malformed response to SECRET_PROVIDER_ERROR without the response text, in message or cause', async () => {
    const err = await rejection(makeAwsSecretsManagerSource().get('malformed-body'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(errorText(err)).not.toContain('Zq9');
  });

  it('maps UnrecognizedClientException to SECRET_ACCESS_DENIED about the credentials', async () => {
    const err = await rejection(makeAwsSecretsManagerSource().get('bad-token'));
    expect(err.code).toBe('SECRET_ACCESS_DENIED');
    expect(err.message).toContain('UnrecognizedClientException');
    expect(err.message).toContain('secretsmanager:GetSecretValue on bad-token');
  });

  it('maps other service errors to SECRET_PROVIDER_ERROR with name, status and cause', async () => {
    const err = await rejection(makeAwsSecretsManagerSource().get('throttled'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain('ThrottlingException (HTTP 400): Rate exceeded');
    expect((err.cause as Error).name).toBe('ThrottlingException');
  });

  it('gives up after timeoutMs when the endpoint never answers', async () => {
    const started = performance.now();
    const err = await rejection(makeAwsSecretsManagerSource({ timeoutMs: 300 }).get('hang'));
    expect(err.code).toBe('SECRET_PROVIDER_ERROR');
    expect(err.message).toContain('no answer within 0.3 s');
    expect(performance.now() - started).toBeLessThan(3000);
  });
});
