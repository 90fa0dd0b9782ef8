/** The secrets interface every credentials provider implements, and the cache placed in front of it. */

/**
 * A secret: a JSON object whose keys become template variables. Values are strings (numbers/booleans are
 * converted with String(); nested objects/arrays make the secret invalid). Frozen, with a null prototype,
 * so a template variable such as `constructor` is never found on it by accident.
 */
export type Secret = Readonly<Record<string, string>>;

/** Where secrets come from. One method, so tests and new providers stay small. */
export interface SecretsSource {
  /**
   * The secret at `location` (an ARN, a parameter name, a JSONFile key). Rejects with an AgentError:
   * SECRET_NOT_FOUND, SECRET_ACCESS_DENIED, SECRET_INVALID or SECRET_PROVIDER_ERROR.
   */
  get(location: string): Promise<Secret>;
}

/** A SecretsSource with a TTL cache that can drop one entry (after a 401/403 from a target). */
export interface SecretsCache extends SecretsSource {
  /** Forget the cached secret at `location`, so the next get() fetches it again (e.g. after a rotation). */
  invalidate(location: string): void;
}

export { makeSecretsCache, type SecretsCacheOptions } from './cache.js';
