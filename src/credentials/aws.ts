/**
 * The AWS credentials managers (AWSSecretsManager, AWSSSMParameterStore) as providers. The SDK
 * clients are imported on first use: they take ~0.5 s to load, which `validate` or a JSONFile
 * setup should not pay.
 */
import { lazySource, makeOptionChecker, type CredentialsProvider } from './provider.js';

/** AWS Secrets Manager: `GetSecretValue`; the secret string is the JSON object. Option `region` (default: the SDK's chain). */
export const awsSecretsManagerProvider: CredentialsProvider = {
  name: 'AWSSecretsManager',
  check(options) {
    const c = makeOptionChecker(options, ['region'], 'AWSSecretsManager');
    c.string('region', false, 'us-east-1');
    return c.problems;
  },
  make(options) {
    const region = options.region as string | undefined;
    return lazySource(async () => (await import('./aws-secrets-manager.js')).makeAwsSecretsManagerSource({ region }));
  },
};

/** AWS SSM Parameter Store: `GetParameter` with decryption; the value is the JSON object. Option `region`. */
export const awsSsmProvider: CredentialsProvider = {
  name: 'AWSSSMParameterStore',
  check(options) {
    const c = makeOptionChecker(options, ['region'], 'AWSSSMParameterStore');
    c.string('region', false, 'us-east-1');
    return c.problems;
  },
  make(options) {
    const region = options.region as string | undefined;
    return lazySource(async () => (await import('./aws-ssm.js')).makeAwsSsmSource({ region }));
  },
};
