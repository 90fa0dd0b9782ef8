/** Building the configured credentials provider. */
import { resolve } from 'node:path';
import type { CredentialsManagerConfig } from '../config/types.js';
import { AgentError, ErrorCodes } from '../errors.js';
import { makeJsonFileSource } from './json-file.js';
import type { SecretsSource } from './source.js';

export type { Secret, SecretsCache, SecretsSource, SecretsCacheOptions } from './source.js';
export { makeSecretsCache } from './source.js';

/** Provider names accepted in platform.credentials_manager.provider. */
export const CREDENTIALS_PROVIDERS: readonly CredentialsManagerConfig['provider'][] = [
  'AWSSecretsManager',
  'AWSSSMParameterStore',
  'JSONFile',
];

/**
 * A source whose provider module is imported on first use: the AWS SDK clients take ~0.5 s to load,
 * which a `dsr-agent validate` or a JSONFile setup should not pay.
 */
function lazySource(load: () => Promise<SecretsSource>): SecretsSource {
  let source: Promise<SecretsSource> | undefined;
  return { get: async (location) => (await (source ??= load())).get(location) };
}

function optionalString(options: Readonly<Record<string, unknown>>, key: string): string | undefined {
  const value = options[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') {
    throw new AgentError(
      ErrorCodes.CONFIG_INVALID,
      `platform.credentials_manager.options.${key} must be a non-empty string (got ${typeof value === 'string' ? 'an empty string' : typeof value}).`,
    );
  }
  return value;
}

/**
 * Build the configured provider (no cache: wrap it with makeSecretsCache). baseDir: folder that a
 * JSONFile's relative filename resolves against. Options read: `region` (AWS providers, default the SDK's
 * chain), `filename` (JSONFile, required). A bad option or an unknown provider throws AgentError(CONFIG_INVALID).
 */
export function makeSecretsSource(cfg: CredentialsManagerConfig, baseDir: string): SecretsSource {
  const options = cfg.options ?? {};
  switch (cfg.provider) {
    case 'AWSSecretsManager': {
      const region = optionalString(options, 'region');
      return lazySource(async () => (await import('./aws-secrets-manager.js')).makeAwsSecretsManagerSource({ region }));
    }
    case 'AWSSSMParameterStore': {
      const region = optionalString(options, 'region');
      return lazySource(async () => (await import('./aws-ssm.js')).makeAwsSsmSource({ region }));
    }
    case 'JSONFile': {
      const filename = optionalString(options, 'filename');
      if (filename === undefined) {
        throw new AgentError(
          ErrorCodes.CONFIG_INVALID,
          'platform.credentials_manager.options.filename is missing: JSONFile needs the path of its JSON file ' +
            '(relative to the config file\'s folder, or absolute).',
        );
      }
      return makeJsonFileSource({ path: resolve(baseDir, filename) });
    }
    default:
      throw new AgentError(
        ErrorCodes.CONFIG_INVALID,
        `platform.credentials_manager.provider ${JSON.stringify((cfg as { provider: unknown }).provider)} is not ` +
          `supported: use one of ${CREDENTIALS_PROVIDERS.join(', ')}.`,
      );
  }
}
