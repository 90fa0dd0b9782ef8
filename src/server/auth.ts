/**
 * Job API authentication: the API client's credentials (checked in constant time), stateless access
 * tokens (HS256 JWTs any replica of the deployment can verify), and the bearer check on /api/v1 routes.
 *
 * RFC 8725 hygiene: the signing key is derived from the API client secret *and* this deployment's
 * identity (client_id, agent.token_audience, datagrail_agent_credentials_location, agent.queue_name), so a
 * token minted by another deployment sharing the secret does not verify; `iss`, `aud` and `sub` (the
 * configured client_id) are checked; a token may be at most the token lifetime old (from `iat`), may not
 * live longer than the agent issues, and may not be issued in the future. The secret is re-read through
 * the secrets cache, so a rotated secret invalidates old tokens without a restart.
 */
import { createHash, hkdfSync, randomUUID, timingSafeEqual } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AgentConfig } from '../config/types.js';
import type { Secret, SecretsSource } from '../credentials/source.js';
import { AgentError, ErrorCodes, errorCodeOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics, TokenFailureReason } from './metrics.js';

/** The `iss` of every access token. */
export const TOKEN_ISSUER = 'dsr-agent';
/** Access token lifetime in seconds, and so the most a token may be old (from `iat`). Default 900 (15 min). */
export const DEFAULT_TOKEN_TTL_SECONDS = 15 * 60;
/** Clock skew allowed between replicas when checking exp/iat, in seconds. */
export const CLOCK_TOLERANCE_SECONDS = 5;
/** A failed client authentication re-reads the API client secret (a rotation) at most this often: 30 s. */
const FORCED_REREAD_INTERVAL_MS = 30 * 1000;
/** Versions the key derivation: changing it invalidates every token issued before. */
const KEY_CONTEXT = 'dsr-agent access-token v2';

/** The API client credentials a request presented. */
export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
}

/** True when `a` equals `b`, in time that depends on neither value nor their lengths (SHA-256 digests compared). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a, 'utf8').digest(), createHash('sha256').update(b, 'utf8').digest());
}

/** True when the presented credentials match the expected pair; both halves are always compared. */
export function credentialsMatch(presented: ClientCredentials, expected: ClientCredentials): boolean {
  const id = secretsEqual(presented.clientId, expected.clientId);
  const secret = secretsEqual(presented.clientSecret, expected.clientSecret);
  return id && secret;
}

function formDecode(s: string): string {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

/**
 * Parse `Authorization: Basic ...` per RFC 6749 §2.3.1 (client id and secret each form-urlencoded, then
 * joined by ":" and base64-encoded). Returns undefined when the header is absent or not Basic, and null
 * when it is Basic but malformed.
 */
export function parseBasicAuth(header: string | undefined): ClientCredentials | null | undefined {
  if (!header) return undefined;
  const m = /^Basic[ ]+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(header);
  if (!m) return /^Basic\b/i.test(header) ? null : undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  try {
    return { clientId: formDecode(decoded.slice(0, colon)), clientSecret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    return null; // bad percent-encoding
  }
}

/** What binds access tokens to one deployment: the `aud` claim, and what else goes into the signing key. */
export interface TokenBinding {
  /** The `aud` of every token: agent.token_audience. */
  readonly audience: string;
  /** What tells this deployment from another sharing the secret: the secret's location and the queue name (key material only, never a claim). */
  readonly deployment: string;
}

/** The binding of `config`'s deployment: every replica of one deployment (same config) computes the same. */
export function tokenBindingOf(config: AgentConfig): TokenBinding {
  return {
    audience: config.agent.token_audience,
    deployment: JSON.stringify([config.datagrail_agent_credentials_location ?? '', config.agent.queue_name]),
  };
}

/**
 * Derive the access-token signing key (HKDF-SHA256, 32 bytes) from the API client secret, salted with the
 * client_id and the deployment's binding: replicas sharing the config and secret agree, another deployment
 * sharing only the secret does not.
 */
export function deriveTokenKey(client: ClientCredentials, binding: TokenBinding): Uint8Array {
  const salt = createHash('sha256').update(JSON.stringify([KEY_CONTEXT, client.clientId, binding.audience, binding.deployment])).digest();
  return new Uint8Array(hkdfSync('sha256', client.clientSecret, salt, KEY_CONTEXT, 32));
}

/** The API client as the credentials manager holds it now, with the key its tokens are signed with. */
export interface ApiClient extends ClientCredentials {
  readonly key: Uint8Array;
}

/** The API client secret, re-read through the secrets cache, and the signing key derived from it. */
export interface TokenKeys {
  readonly binding: TokenBinding;
  /**
   * The API client as stored now. Rejects with an AgentError: the provider's SECRET_* code, or SECRET_INVALID
   * when the secret lacks client_id or client_secret.
   */
  current(): Promise<ApiClient>;
  /**
   * For the token endpoint after a credentials mismatch: drop the cached secret and read it again (a rotation
   * the cache has not seen yet), at most once every 30 s; resolves to undefined when it is too soon.
   */
  reread(): Promise<ApiClient | undefined>;
  /**
   * For verifying a bearer token: {@link current}, or while the credentials manager cannot be read, the last
   * client read (an outage of the manager does not lock out holders of valid tokens; it is logged once).
   */
  forVerify(): Promise<ApiClient>;
}

/** Options of {@link makeTokenKeys}. */
export interface TokenKeysOptions {
  /** The secrets cache (its TTL, agent.secret_cache_ttl_seconds, bounds how long a rotation goes unseen). */
  secrets: SecretsSource & { invalidate?(location: string): void };
  /** datagrail_agent_credentials_location. */
  location: string;
  binding: TokenBinding;
  logger: Logger;
  /** Clock in milliseconds. Default `Date.now`. */
  now?: () => number;
}

/**
 * Make the {@link TokenKeys} of a deployment. The key is derived once per secret value: while the cache
 * hands back the same secret, a request costs a map lookup. When the value changes, the new key takes over
 * at once and "API client secret changed" is logged (at INFO, naming no value).
 */
export function makeTokenKeys(options: TokenKeysOptions): TokenKeys {
  const { secrets, location, binding, logger } = options;
  const now = options.now ?? Date.now;
  let last: { secret: Secret; client: ApiClient } | undefined;
  let unreadable = false;
  let lastReread = -Infinity;

  async function current(): Promise<ApiClient> {
    const secret = await secrets.get(location);
    if (last && secret === last.secret) return last.client; // the cache handed back the same object
    const { client_id: clientId, client_secret: clientSecret } = secret;
    if (typeof clientId !== 'string' || typeof clientSecret !== 'string' || !clientId || !clientSecret) {
      throw new AgentError(ErrorCodes.SECRET_INVALID, 'the API client secret at datagrail_agent_credentials_location must hold a non-empty "client_id" and "client_secret"');
    }
    if (last && last.client.clientId === clientId && last.client.clientSecret === clientSecret) {
      last = { secret, client: last.client };
      return last.client;
    }
    const client: ApiClient = { clientId, clientSecret, key: deriveTokenKey({ clientId, clientSecret }, binding) };
    if (last) logger.info('API client secret changed: access tokens signed with the previous one are refused from now on');
    last = { secret, client };
    return client;
  }

  return {
    binding,
    current,
    async reread() {
      if (!secrets.invalidate || now() - lastReread < FORCED_REREAD_INTERVAL_MS) return undefined;
      lastReread = now();
      secrets.invalidate(location);
      return current();
    },
    async forVerify() {
      try {
        const client = await current();
        if (unreadable) logger.info('the API client secret can be read again');
        unreadable = false;
        return client;
      } catch (err) {
        if (!last) throw err;
        if (!unreadable) logger.warn({ code: errorCodeOf(err) ?? 'UNKNOWN' }, 'cannot read the API client secret; verifying access tokens with the last one read');
        unreadable = true;
        return last.client;
      }
    },
  };
}

/** Sign an access token for `client`: HS256, iss/aud/sub/jti/iat/exp, valid `ttlSeconds`. */
export async function issueAccessToken(client: ApiClient, binding: TokenBinding, ttlSeconds: number = DEFAULT_TOKEN_TTL_SECONDS): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(binding.audience)
    .setSubject(client.clientId)
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(client.key);
}

/** Why a bearer token was refused, and what the client should do. */
export class BearerError extends Error {
  override name = 'BearerError';
  constructor(
    readonly reason: Extract<TokenFailureReason, `bearer_${string}`>,
    message: string,
  ) {
    super(message);
  }
}

const GET_TOKEN = 'get one from POST /api/v1/token (OAuth 2.0 client credentials)';
const NOT_OURS = `the access token was not issued by this agent deployment or is no longer valid (the API client secret may have been rotated); ${GET_TOKEN}`;

/** What a bearer token is checked against. */
export interface BearerCheck {
  client: ApiClient;
  binding: TokenBinding;
  /** The token lifetime: the most a token may be old, from `iat`, and the longest `exp - iat`. */
  maxAgeSeconds: number;
}

/** The token of an `Authorization: Bearer <token>` header; throws {@link BearerError} when it is missing or not Bearer. */
export function bearerTokenOf(header: string | undefined): string {
  if (!header) throw new BearerError('bearer_missing', `the Authorization header is missing; send "Authorization: Bearer <token>" and ${GET_TOKEN}`);
  const m = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)\s*$/i.exec(header);
  if (!m) throw new BearerError('bearer_malformed', `the Authorization header is not "Bearer <token>"; ${GET_TOKEN}`);
  return m[1]!;
}

/** Verify an access token; resolves to its client id, rejects with {@link BearerError}. */
export async function verifyAccessToken(token: string, check: BearerCheck): Promise<string> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, check.client.key, {
      algorithms: ['HS256'],
      issuer: TOKEN_ISSUER,
      audience: check.binding.audience,
      subject: check.client.clientId,
      requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      // Refuses an iat older than the lifetime (a self-minted token with exp in the year 3000 dies with it) and an iat in the future.
      maxTokenAge: check.maxAgeSeconds,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw new BearerError('bearer_expired', `the access token has expired; ${GET_TOKEN}`);
    if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) {
      throw new BearerError('bearer_malformed', `the bearer token is not a valid JWT; ${GET_TOKEN}`);
    }
    // Forged, wrong algorithm (e.g. "none"), wrong issuer, audience or subject, iat in the future, another
    // deployment's key, or signed with a rotated secret.
    throw new BearerError('bearer_invalid', NOT_OURS);
  }
  // This agent never issues a token that lives longer than its lifetime: a longer one was minted elsewhere.
  if (payload.exp! - payload.iat! > check.maxAgeSeconds) throw new BearerError('bearer_invalid', NOT_OURS);
  return payload.sub!;
}

/**
 * An onRequest hook that refuses requests without a valid bearer token (401 invalid_token, RFC 6750 §3),
 * checked against the API client secret as the credentials manager holds it now (see {@link TokenKeys}).
 */
export function makeBearerHook(keys: TokenKeys, metrics: Metrics, maxAgeSeconds: number = DEFAULT_TOKEN_TTL_SECONDS) {
  return async function requireBearer(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      const token = bearerTokenOf(request.headers.authorization);
      let client: ApiClient;
      try {
        client = await keys.forVerify();
      } catch (err) {
        // Only before the secret was ever read: there is nothing to verify against.
        metrics.tokenFailed('credentials_unavailable');
        request.log.error({ code: errorCodeOf(err) ?? 'UNKNOWN' }, 'cannot read the API client secret to verify a bearer token');
        return reply
          .code(503)
          .header('retry-after', '5')
          .send({ error: 'credentials_unavailable', message: 'the agent cannot read its API client credentials from the credentials manager right now; retry later (the agent log says why)' });
      }
      await verifyAccessToken(token, { client, binding: keys.binding, maxAgeSeconds });
    } catch (err) {
      if (!(err instanceof BearerError)) throw err;
      metrics.tokenFailed(err.reason);
      request.log.info({ reason: err.reason }, 'bearer token refused');
      // One challenge for every case, a missing header included, so clients need a single code path.
      return reply.code(401).header('www-authenticate', 'Bearer realm="dsr-agent", error="invalid_token"').send({ error: 'invalid_token', message: err.message });
    }
  };
}
