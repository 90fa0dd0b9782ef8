import { loadConfig, type ConfigSources } from './config/load.js';
import type { LoadedConfig } from './config/types.js';
import { makeSecretsSource } from './credentials/index.js';
import { makeSecretsCache, type SecretsCache } from './credentials/source.js';
import { makeEngine, type Engine, type EngineHooks } from './engine/index.js';
import type { Logger } from './logger.js';
import { readEnv, type AgentEnv } from './env.js';

/** Everything a command needs, built from one loaded config. */
export interface Agent {
  readonly loaded: LoadedConfig;
  readonly secrets: SecretsCache;
  readonly engine: Engine;
}

/** Load the config once and build the secrets cache and engine from it. */
export async function makeAgent(sources: ConfigSources, logger: Logger, hooks?: EngineHooks, env: AgentEnv = readEnv({})): Promise<Agent> {
  const loaded = await loadConfig(sources);
  const secrets = makeSecretsCache(makeSecretsSource(loaded.config.platform.credentials_manager, { baseDir: loaded.baseDir, env }), {
    ttlMs: loaded.config.agent.secret_cache_ttl_seconds * 1000,
  });
  const engine = makeEngine({ config: loaded.config, secrets, logger, hooks });
  return { loaded, secrets, engine };
}
