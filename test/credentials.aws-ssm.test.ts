import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { makeAwsSsmSource } from '../src/credentials/aws-ssm.js';
import { makeSecretsSource } from '../src/credentials/index.js';
import { setAwsTestEnv } from './helpers/aws-json-server.js';
import { errorText, LEAK, rejection } from './helpers/credentials.js';
import { startSSM, type FakeSSM } from './helpers/ssm-server.js';

describe('AWSSSMParameterStore against an SSM endpoint', () => {
  let fake: FakeSSM;
  let restoreEnv: () => void;

  beforeAll(async () => {
    fake = await startSSM({
      '/dsr/api': { credentials: 'dXNlcjpwYXNz', retries: 3 },
      '/dsr/not-json': `token ${LEAK}`,
      '/dsr/array': [LEAK],
      '/dsr/nested': { credentials: [LEAK] },
      '/dsr/denied': { credentials: LEAK },
    });
    fake.deny.add('/dsr/denied');
    restoreEnv = setAwsTestEnv({ AWS_ENDPOINT_URL_SSM: fake.url });
  });

  afterAll(async () => {
    restoreEnv();
    await fake.close();
  });

  it('returns the parameter as a secret, asking for decryption', async () => {
    const source = makeSecretsSource({ provider: 'AWSSSMParameterStore' }, '/unused');
    const before = fake.calls.length;
    expect({ ...(await source.get('/dsr/api')) }).toEqual({ credentials: 'dXNlcjpwYXNz', retries: '3' });
    expect(fake.calls.slice(before)).toEqual(['/dsr/api']);
    expect(fake.withDecryption.slice(before)).toEqual([true]);
  });

  it('maps ParameterNotFound to SECRET_NOT_FOUND', async () => {
    const err = await rejection(makeAwsSsmSource().get('/dsr/missing'));
    expect(err.code).toBe('SECRET_NOT_FOUND');
    expect(err.message).toContain('/dsr/missing');
    expect(err.message).toContain('AWSSSMParameterStore');
  });

  it('maps AccessDeniedException to SECRET_ACCESS_DENIED naming ssm:GetParameter and kms:Decrypt', async () => {
    const err = await rejection(makeAwsSsmSource().get('/dsr/denied'));
    expect(err.code).toBe('SECRET_ACCESS_DENIED');
    expect(err.message).toContain('ssm:GetParameter on /dsr/denied');
    expect(err.message).toContain('kms:Decrypt');
    expect(errorText(err)).not.toContain(LEAK);
  });

  it.each([
    ['/dsr/not-json', 'not valid JSON'],
    ['/dsr/array', 'it is an array'],
    ['/dsr/nested', 'the value of key "credentials" is an array'],
  ])('rejects %s with SECRET_INVALID, without quoting the value', async (location, reason) => {
    const err = await rejection(makeAwsSsmSource().get(location));
    expect(err.code).toBe('SECRET_INVALID');
    expect(err.message).toContain(`the secret at ${location} must be a JSON object of strings`);
    expect(err.message).toContain(reason);
    expect(errorText(err)).not.toContain('Zq9');
  });
});
