/**
 * Connection tokens (connection field `tokens`): log in first, use the result in `{name}`.
 *
 * A token whose request needs nothing but the connection's secret (and other such tokens) is
 * shared: fetched on first use, kept in the engine-wide {@link TokenCache}, renewed shortly before
 * it expires, with one fetch in flight however many jobs need it. A token whose request uses an
 * identifier, directly or through another token, belongs to one data subject: it lives in the
 * {@link TokenScope} of one job's connection run and is never reused for another person.
 */
import { decodeJwt } from 'jose';
import { AgentError, ErrorCodes, isAgentError } from '../errors.js';
import type { APIProxyConnection, TokenSpec } from '../config/types.js';
import { describeType } from '../json-pointer.js';
import type { Secret } from '../credentials/source.js';
import { compileQuery } from './compile.js';

/** A fetched token and when it expires (ms since the epoch; Infinity: until a target refuses it). */
export interface FetchedToken {
  readonly value: string;
  readonly expiresAt: number;
}

/** Renew this long before expiry at most: 60 s, or a tenth of the lifetime when that is shorter. */
export const MAX_RENEW_EARLY_MS = 60 * 1000;

/** One token's current value and its in-flight fetch. */
class Slot {
  private value: string | undefined;
  private renewAt = Infinity;
  private inflight: Promise<string> | undefined;

  /** The value, fetching it when there is none or it is due for renewal; concurrent callers share one fetch. */
  async get(fetch: () => Promise<FetchedToken>, now: () => number): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      if (this.value !== undefined && now() < this.renewAt) return this.value;
      const mine = this.inflight === undefined;
      if (mine) {
        const started = now();
        this.inflight = fetch()
          .then((t) => {
            this.value = t.value;
            this.renewAt = t.expiresAt - Math.min(MAX_RENEW_EARLY_MS, Math.max(0, t.expiresAt - started) / 10);
            return t.value;
          })
          .finally(() => {
            this.inflight = undefined;
          });
      }
      try {
        return await this.inflight!;
      } catch (err) {
        // Another job's fetch ended with that job's own deadline or shutdown: fetch again for ours.
        const foreignAbort = !mine && (isAgentError(err, ErrorCodes.JOB_TIMEOUT) || isAgentError(err, ErrorCodes.CANCELLED) || (err as Error)?.name === 'AbortError');
        if (!foreignAbort || attempt > 0) throw err;
      }
    }
  }

  /** Forget the value if it is still `stale` (a newer one fetched meanwhile is kept). */
  drop(stale?: string): void {
    if (stale === undefined || this.value === stale) {
      this.value = undefined;
      this.renewAt = Infinity;
    }
  }
}

/** The engine-wide store of shared tokens, keyed by connection uuid and token name. */
export type TokenCache = Map<string, Slot>;

/** An empty engine-wide token store. */
export function makeTokenCache(): TokenCache {
  return new Map();
}

/** Fetches one token: renders and sends its request with `deps` (the tokens it uses) filled in. */
export type TokenFetcher = (name: string, spec: TokenSpec, deps: Readonly<Record<string, string>>, signal: AbortSignal) => Promise<FetchedToken>;

/** The tokens of one job's run of one connection. */
export interface TokenScope {
  /** The connection's token names. */
  readonly names: ReadonlySet<string>;
  /** Values of `names` (and, first, of the tokens they depend on), fetched as needed. */
  values(names: Iterable<string>, signal: AbortSignal): Promise<Record<string, string>>;
  /** Forget these values: a target answered 401 to a request that carried them. */
  drop(used: Readonly<Record<string, string>>): void;
  /** Forget every token of the connection (its secret was refreshed). */
  dropAll(): void;
  /** Every token value known to this scope, for masking. */
  known(): string[];
}

/** The token names a template-using request refers to, in order. */
export function tokensUsed(variables: Iterable<string>, names: ReadonlySet<string>): string[] {
  return [...variables].filter((v) => names.has(v));
}

/** `names` and every token they depend on, each after its dependencies (the order a login sequence runs). */
export function tokenOrder(conn: APIProxyConnection, names: Iterable<string>): string[] {
  const specs = conn.tokens ?? {};
  const all = new Set(Object.keys(specs));
  const out: string[] = [];
  const visit = (name: string) => {
    if (out.includes(name) || !all.has(name)) return;
    for (const d of tokensUsed(compileQuery(specs[name]!.request).variables, all)) visit(d);
    out.push(name);
  };
  for (const n of names) visit(n);
  return out;
}

/** Options of {@link makeTokenScope}. */
export interface TokenScopeOptions {
  readonly conn: APIProxyConnection;
  readonly cache: TokenCache;
  /** The connection's current secret (it changes when refreshed after a 401/403). */
  readonly secret: () => Secret;
  readonly identifiers: Readonly<Record<string, string>>;
  readonly fetch: TokenFetcher;
  readonly now?: () => number;
}

/** Build the token scope of one connection run. */
export function makeTokenScope(opts: TokenScopeOptions): TokenScope {
  const specs = opts.conn.tokens ?? {};
  const names = new Set(Object.keys(specs));
  const now = opts.now ?? Date.now;
  const local = new Map<string, Slot>();
  const used = new Map<string, string>();
  const deps = (name: string) => tokensUsed(compileQuery(specs[name]!.request).variables, names);
  const ownVariables = (name: string) => [...compileQuery(specs[name]!.request).variables].filter((v) => !names.has(v));

  /** True when the token (or one it depends on) needs a value the secret does not hold: an identifier. */
  const perSubject = (name: string, seen = new Set<string>()): boolean => {
    if (seen.has(name)) return false; // cycles are refused at load
    seen.add(name);
    const secret = opts.secret();
    return ownVariables(name).some((v) => !Object.hasOwn(secret, v)) || deps(name).some((d) => perSubject(d, seen));
  };

  const slotOf = (name: string): Slot => {
    if (!perSubject(name)) {
      const key = `${opts.conn.uuid}\u0000${name}`;
      let slot = opts.cache.get(key);
      if (!slot) opts.cache.set(key, (slot = new Slot()));
      return slot;
    }
    const secret = opts.secret();
    const missing = ownVariables(name).filter((v) => !Object.hasOwn(secret, v) && !Object.hasOwn(opts.identifiers, v));
    if (missing.length > 0) {
      throw new AgentError(
        ErrorCodes.TEMPLATE_MISSING_VARIABLE,
        `token '${name}' needs {${missing.join('}, {')}}, which is neither a key of the connection's secret nor an identifier of the request ` +
          '(test queries carry no identifiers: they may use tokens that need only the secret)',
      );
    }
    let slot = local.get(name);
    if (!slot) local.set(name, (slot = new Slot()));
    return slot;
  };

  const valueOf = async (name: string, signal: AbortSignal): Promise<string> => {
    const depValues: Record<string, string> = {};
    for (const d of deps(name)) depValues[d] = await valueOf(d, signal);
    const value = await slotOf(name).get(() => opts.fetch(name, specs[name]!, depValues, signal), now);
    used.set(name, value);
    return value;
  };

  return {
    names,
    async values(wanted, signal) {
      const out: Record<string, string> = {};
      for (const name of wanted) out[name] = await valueOf(name, signal);
      return out;
    },
    drop(stale) {
      for (const [name, value] of Object.entries(stale)) {
        if (names.has(name)) slotOf(name).drop(value);
      }
    },
    dropAll() {
      for (const name of names) {
        local.get(name)?.drop();
        opts.cache.get(`${opts.conn.uuid}\u0000${name}`)?.drop();
      }
    },
    known: () => [...used.values()],
  };
}

/**
 * When a token expires (ms since the epoch) from what its response said: `expires_in` seconds,
 * `expires_at` Unix seconds, `ttl_seconds`, else the JWT `exp` claim, else never (Infinity).
 * `said` is the number found at the spec's pointer, if any. Throws TOKEN_FAILED when the pointer's
 * value is there but not a number.
 */
export function expiryOf(name: string, spec: TokenSpec, value: string, said: unknown, now: number): number {
  const pointer = spec.expires_in ?? spec.expires_at;
  if (pointer !== undefined && said !== undefined) {
    const n = typeof said === 'string' && /^\d+(\.\d+)?$/.test(said) ? Number(said) : said;
    if (typeof n !== 'number' || !Number.isFinite(n)) {
      throw new AgentError(ErrorCodes.TOKEN_FAILED, `token '${name}': the login response holds ${describeType(said)} at ${spec.expires_in !== undefined ? 'expires_in' : 'expires_at'} "${pointer}", not a number of seconds`);
    }
    return spec.expires_in !== undefined ? now + n * 1000 : n * 1000;
  }
  if (spec.ttl_seconds !== undefined) return now + spec.ttl_seconds * 1000;
  if (value.split('.').length === 3) {
    try {
      const { exp } = decodeJwt(value);
      if (typeof exp === 'number') return exp * 1000;
    } catch {
      // not a JWT after all: it lives until a target refuses it
    }
  }
  return Infinity;
}
