/** AWSSecretsManager: secrets from AWS Secrets Manager. */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { resolveRegion, toAgentError, type AwsProviderContext } from './aws-errors.js';
import { makeInvalidSecretError, parseSecret } from './secret.js';
import type { SecretsSource } from './source.js';

/** Options of {@link makeAwsSecretsManagerSource}. */
export interface AwsSecretsManagerOptions {
  /** AWS region. Default: the SDK's chain (AWS_REGION, profile). */
  region?: string;
  /** Cap on one GetSecretValue call, SDK retries included, in milliseconds. Default 30_000 (30 s). */
  timeoutMs?: number;
  /** A ready client (custom credentials); when given, `region` is ignored. */
  client?: SecretsManagerClient;
}

const DEFAULT_TIMEOUT_MS = 30 * 1000; // 30 s

const CONTEXT: AwsProviderContext = {
  provider: 'AWSSecretsManager',
  service: 'Secrets Manager',
  permission: 'secretsmanager:GetSecretValue',
  kmsHint: "if the secret uses a customer managed KMS key, also grant kms:Decrypt on that key",
  notFound: ['ResourceNotFoundException'],
};

/**
 * AWSSecretsManager via the real @aws-sdk/client-secrets-manager, configured the standard AWS way
 * (AWS_REGION, AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL, profiles, roles). `location` is a
 * secret name or ARN; the SecretString (or a SecretBinary holding UTF-8 text) must be a JSON object.
 */
export function makeAwsSecretsManagerSource(options: AwsSecretsManagerOptions = {}): SecretsSource {
  const client = options.client ?? new SecretsManagerClient(options.region ? { region: options.region } : {});
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    async get(location) {
      let output;
      try {
        output = await client.send(new GetSecretValueCommand({ SecretId: location }), {
          abortSignal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        throw toAgentError(err, CONTEXT, location, await resolveRegion(client.config), timeoutMs);
      }
      if (typeof output.SecretString === 'string') return parseSecret(output.SecretString, CONTEXT.provider, location);
      if (output.SecretBinary) {
        let text: string;
        try {
          text = new TextDecoder('utf-8', { fatal: true }).decode(output.SecretBinary);
        } catch {
          throw makeInvalidSecretError(CONTEXT.provider, location, 'its SecretBinary is not UTF-8 text');
        }
        return parseSecret(text, CONTEXT.provider, location);
      }
      throw makeInvalidSecretError(CONTEXT.provider, location, 'it has neither a SecretString nor a SecretBinary');
    },
  };
}
