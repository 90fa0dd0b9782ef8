/**
 * Validate a parsed config: the JSON Schemas (schema-check.ts) and the rules beyond them
 * (semantic-check.ts), all problems at once; then defaults, normalisation and deep freeze.
 */
import { type ConfigProblem, makeConfigError } from '../errors.js';
import { normalizeConfig } from './normalize.js';
import { isObject, sortProblems } from './problems.js';
import { checkCredentialsManager } from '../credentials/index.js';
import { checkStorageManager } from '../storage/index.js';
import { checkRequestSources } from '../sources/index.js';
import { checkSchema } from './schema-check.js';
import { checkSemantics } from './semantic-check.js';
import type { AgentConfig } from './types.js';

/**
 * Every problem of a parsed config, schema and semantic, de-duplicated and sorted by path
 * (array indices numerically). Empty when the config is valid.
 */
export function listConfigProblems(raw: unknown): ConfigProblem[] {
  const platform = isObject(raw) && isObject(raw.platform) ? raw.platform : {};
  // Provider options: the same checks `serve` runs when it builds the providers.
  const providers = [
    ...(isObject(platform.credentials_manager) ? checkCredentialsManager(platform.credentials_manager) : []),
    ...(isObject(platform.storage_manager) ? checkStorageManager(platform.storage_manager) : []),
  ];
  const sources = isObject(raw) ? checkRequestSources(raw.request_sources) : [];
  return sortProblems([...checkSchema(raw), ...checkSemantics(raw), ...providers, ...sources]);
}

/**
 * Validate an already-parsed config and return it frozen, with defaults applied.
 * @param raw - the parsed JSON.
 * @param source - names the config in the error message (default "config").
 * @throws AgentError CONFIG_INVALID whose `.problems` lists every problem.
 */
export function validateConfig(raw: unknown, source = 'config'): AgentConfig {
  const problems = listConfigProblems(raw);
  if (problems.length > 0) throw makeConfigError(problems, source);
  return normalizeConfig(raw as Record<string, unknown>);
}
