/**
 * Throttling of failed client authentications at the token endpoint. Failures are counted per
 * client IP and per client_id; past a few free failures each further one locks that key for a
 * growing time (doubling, capped), during which the endpoint answers 429 with Retry-After before
 * looking at the credentials, so guessing is slow whatever the secret. Only failures count: a
 * burst of correct requests (many replicas fetching tokens) is never slowed, and a success clears
 * its keys. State is in memory, bounded, per replica.
 */

/** Throttle settings (the defaults hold in production; tests shorten them). */
export interface ThrottleOptions {
  /** Failures per client IP before locking starts. Default 5. */
  readonly freeFailuresPerIp: number;
  /** Failures per client_id before locking starts (higher: anyone can fail for a client_id). Default 20. */
  readonly freeFailuresPerClient: number;
  /** First lock. Default 1000 ms, doubling per further failure. */
  readonly baseLockMs: number;
  /** Longest lock. Default 15 min for an IP, a quarter of it for a client_id. */
  readonly maxLockMs: number;
  /** Keys remembered at most (oldest forgotten first). Default 10,000. */
  readonly maxKeys: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = Object.freeze({
  freeFailuresPerIp: 5,
  freeFailuresPerClient: 20,
  baseLockMs: 1000, // 1 s
  maxLockMs: 15 * 60 * 1000, // 15 min
  maxKeys: 10_000,
});

interface Entry {
  failures: number;
  lockedUntil: number;
}

/** The token endpoint's failure throttle. */
export interface Throttle {
  /** Milliseconds until this IP or client may try again, or 0. */
  retryAfterMs(ip: string, clientId: string | undefined): number;
  failed(ip: string, clientId: string | undefined): void;
  succeeded(ip: string, clientId: string): void;
}

/** A throttle with `opts` over the defaults; `now` for tests. */
export function makeThrottle(opts: Partial<ThrottleOptions> = {}, now: () => number = Date.now): Throttle {
  const o = { ...DEFAULT_THROTTLE, ...opts };
  const entries = new Map<string, Entry>();
  const keyOf = (kind: 'ip' | 'client', v: string) => `${kind}\u0000${v}`;
  const left = (key: string) => Math.max(0, (entries.get(key)?.lockedUntil ?? 0) - now());
  const fail = (key: string, free: number, maxLockMs: number) => {
    const e = entries.get(key) ?? { failures: 0, lockedUntil: 0 };
    entries.delete(key); // re-insert: the map's order is the eviction order
    e.failures++;
    if (e.failures > free) e.lockedUntil = now() + Math.min(maxLockMs, o.baseLockMs * 2 ** Math.min(30, e.failures - free - 1));
    entries.set(key, e);
    while (entries.size > o.maxKeys) entries.delete(entries.keys().next().value!);
  };
  return {
    retryAfterMs(ip, clientId) {
      return Math.max(left(keyOf('ip', ip)), clientId === undefined ? 0 : left(keyOf('client', clientId)));
    },
    failed(ip, clientId) {
      fail(keyOf('ip', ip), o.freeFailuresPerIp, o.maxLockMs);
      if (clientId !== undefined) fail(keyOf('client', clientId), o.freeFailuresPerClient, o.maxLockMs / 4);
    },
    succeeded(ip, clientId) {
      entries.delete(keyOf('ip', ip));
      entries.delete(keyOf('client', clientId));
    },
  };
}
