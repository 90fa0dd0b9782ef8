/** AWSSSMParameterStore: secrets from AWS Systems Manager Parameter Store. */
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { resolveRegion, toAgentError, type AwsProviderContext } from './aws-errors.js';
import { makeInvalidSecretError, parseSecret } from './secret.js';
import type { SecretsSource } from './source.js';

/** Options of {@link makeAwsSsmSource}. */
export interface AwsSsmOptions {
  /** AWS region. Default: the SDK's chain (AWS_REGION, profile). */
  region?: string;
  /** Cap on one GetParameter call, SDK retries included, in milliseconds. Default 30_000 (30 s). */
  timeoutMs?: number;
  /** A ready client (custom credentials); when given, `region` is ignored. */
  client?: SSMClient;
}

const DEFAULT_TIMEOUT_MS = 30 * 1000; // 30 s

const CONTEXT: AwsProviderContext = {
  provider: 'AWSSSMParameterStore',
  service: 'SSM Parameter Store',
  permission: 'ssm:GetParameter',
  kmsHint: 'for a SecureString, also grant kms:Decrypt on its KMS key',
  notFound: ['ParameterNotFound', 'ParameterVersionNotFound'],
};

/**
 * AWSSSMParameterStore via the real @aws-sdk/client-ssm (GetParameter, WithDecryption: true), configured the
 * standard AWS way (AWS_REGION, AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL, profiles, roles). `location` is a
 * parameter name or ARN; its value must be a JSON object.
 */
export function makeAwsSsmSource(options: AwsSsmOptions = {}): SecretsSource {
  const client = options.client ?? new SSMClient(options.region ? { region: options.region } : {});
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    async get(location) {
      let output;
      try {
        output = await client.send(new GetParameterCommand({ Name: location, WithDecryption: true }), {
          abortSignal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        throw toAgentError(err, CONTEXT, location, await resolveRegion(client.config), timeoutMs);
      }
      const value = output.Parameter?.Value;
      if (typeof value !== 'string') throw makeInvalidSecretError(CONTEXT.provider, location, 'it has no value');
      return parseSecret(value, CONTEXT.provider, location);
    },
  };
}
