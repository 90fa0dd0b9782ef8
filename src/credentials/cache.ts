/** A TTL cache in front of a SecretsSource. */
import { AgentError, ErrorCodes } from '../errors.js';
import type { Secret, SecretsCache, SecretsSource } from './source.js';

/** Options of {@link makeSecretsCache}. */
export interface SecretsCacheOptions {
  /** How long a fetched secret is served from memory, in milliseconds. Default 300_000 (5 min); 0 disables caching (concurrent gets still share one fetch). */
  ttlMs?: number;
  /** Clock in milliseconds. Default `Date.now`. */
  now?: () => number;
}

const DEFAULT_TTL_MS = 5 * 60 * 1000; // 5 min

interface Entry {
  readonly promise: Promise<Secret>;
  /** When the entry stops being served; Infinity while the fetch is in flight. */
  expiresAt: number;
}

/**
 * Wrap `source` in a TTL cache. Concurrent gets for one location share one in-flight fetch; a failed fetch
 * is not cached (the next get tries again); the TTL runs from the moment a fetch succeeds.
 * `invalidate(location)` drops the entry, including an in-flight one, whose result is then not stored.
 */
export function makeSecretsCache(source: SecretsSource, options: SecretsCacheOptions = {}): SecretsCache {
  const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
  if (!Number.isFinite(ttlMs) || ttlMs < 0) {
    throw new AgentError(ErrorCodes.CONFIG_INVALID, `The secrets cache TTL must be a finite number of milliseconds ≥ 0 (got ${ttlMs}).`);
  }
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();

  function fetch(location: string): Promise<Secret> {
    const promise = source.get(location);
    const entry: Entry = { promise, expiresAt: Infinity };
    entries.set(location, entry);
    promise.then(
      () => {
        entry.expiresAt = now() + ttlMs;
      },
      () => {
        // Only this fetch's own entry: after an invalidate, a newer fetch may own the slot.
        if (entries.get(location) === entry) entries.delete(location);
      },
    );
    return promise;
  }

  return {
    get(location) {
      const entry = entries.get(location);
      if (entry && now() < entry.expiresAt) return entry.promise;
      return fetch(location);
    },
    invalidate(location) {
      entries.delete(location);
    },
  };
}
