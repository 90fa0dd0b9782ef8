/** The credentials providers (one module each) and building the configured one. */
import type { CredentialsManagerConfig } from '../config/types.js';
import { makeConfigError, type ConfigProblem } from '../errors.js';
import { readEnv } from '../env.js';
import { awsSecretsManagerProvider, awsSsmProvider } from './aws.js';
import { azureKeyVaultProvider } from './azure-key-vault.js';
import { gcpSecretManagerProvider } from './gcp-secret-manager.js';
import { jsonFileProvider } from './json-file.js';
import type { CredentialsProvider, CredentialsProviderContext } from './provider.js';
import type { SecretsSource } from './source.js';

export type { Secret, SecretsCache, SecretsSource, SecretsCacheOptions } from './source.js';
export type { CredentialsProvider, CredentialsProviderContext } from './provider.js';
export { makeSecretsCache } from './source.js';

/** Every credentials manager, by its `provider` name; the schema's enum is checked against these names in a test. */
export const CREDENTIALS_PROVIDERS: readonly CredentialsProvider[] = [
  awsSecretsManagerProvider,
  awsSsmProvider,
  jsonFileProvider,
  azureKeyVaultProvider,
  gcpSecretManagerProvider,
];

const AT = '/platform/credentials_manager';

/** Every problem with platform.credentials_manager's provider and options, with JSON paths ([] when fine). */
export function checkCredentialsManager(cfg: { provider?: unknown; options?: unknown }): ConfigProblem[] {
  const provider = CREDENTIALS_PROVIDERS.find((p) => p.name === cfg.provider);
  if (!provider) return []; // the schema names the supported providers
  const options = cfg.options ?? {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) return []; // the schema reports it
  return provider.check(options as Record<string, unknown>).map((p) => ({ path: `${AT}/options${p.field ? `/${p.field}` : ''}`, message: p.message }));
}

/**
 * Build the configured provider's source (no cache: wrap it with makeSecretsCache). Options are
 * checked as `validate` checks them: a problem throws AgentError(CONFIG_INVALID) listing all.
 */
export function makeSecretsSource(cfg: CredentialsManagerConfig, ctx: CredentialsProviderContext | string): SecretsSource {
  // A bare folder (tests, tools): no cloud settings, as with an empty environment.
  const context: CredentialsProviderContext = typeof ctx === 'string' ? { baseDir: ctx, env: readEnv({}) } : ctx;
  const problems = checkCredentialsManager(cfg);
  const provider = CREDENTIALS_PROVIDERS.find((p) => p.name === cfg.provider);
  if (!provider) {
    problems.push({ path: `${AT}/provider`, message: `is not supported: use one of ${CREDENTIALS_PROVIDERS.map((p) => p.name).join(', ')}` });
  }
  if (problems.length) throw makeConfigError(problems);
  return provider!.make(cfg.options ?? {}, context);
}
