/**
 * The credentials-provider seam: one module per `platform.credentials_manager.provider`, each a
 * {@link CredentialsProvider}. `validate` and `serve` both run `check`, so they refuse the same
 * options with the same messages; `make` builds the source and loads its SDK only on first use.
 */
import type { AgentEnv } from '../env.js';
import type { SecretsSource } from './source.js';

/** One problem with a provider option: the option's name and what to do about it. */
export interface OptionProblem {
  /** The option (`secret_vault`), or '' for the options object as a whole. */
  readonly field: string;
  readonly message: string;
}

/** What a provider is built with besides its options. */
export interface CredentialsProviderContext {
  /** Folder that relative paths (JSONFile's filename) resolve against. */
  readonly baseDir: string;
  /** The environment, read once in src/env.ts (cloud credentials, emulator endpoints). */
  readonly env: AgentEnv;
}

/** A credentials manager type. */
export interface CredentialsProvider {
  /** The `provider` value, e.g. "AzureKeyVault". */
  readonly name: string;
  /** Every problem with `options` (required fields, types, unknown options); [] when they are fine. */
  check(options: Readonly<Record<string, unknown>>): OptionProblem[];
  /** Build the source from options that passed `check`. Must not load the cloud SDK before the first `get`. */
  make(options: Readonly<Record<string, unknown>>, ctx: CredentialsProviderContext): SecretsSource;
}

/** A source whose implementation is imported on first use (cloud SDKs take time and memory to load). */
export function lazySource(load: () => Promise<SecretsSource>): SecretsSource {
  let source: Promise<SecretsSource> | undefined;
  return {
    get: async (location) => {
      const s = (source ??= load());
      s.catch(() => (source = undefined)); // a failed load is retried on the next get
      return (await s).get(location);
    },
  };
}

/** Helpers for `check`: collects problems and reads typed options. */
export function makeOptionChecker(options: Readonly<Record<string, unknown>>, known: readonly string[], provider: string) {
  const problems: OptionProblem[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) add(key, `options.${key} is not an option of ${provider}; remove it (known options: ${known.join(', ') || 'none'})`);
  }
  const string = (field: string, required: boolean, example: string): string | undefined => {
    const v = options[field];
    if (v === undefined || v === '') {
      if (required) add(field, `options.${field} is required for ${provider}: set it, e.g. ${JSON.stringify(example)}`);
      return undefined;
    }
    if (typeof v !== 'string' || v.trim() === '') {
      add(field, `options.${field} must be a non-empty string, e.g. ${JSON.stringify(example)}`);
      return undefined;
    }
    return v;
  };
  return { problems, add, string };
}
