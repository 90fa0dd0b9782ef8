/**
 * Job API authentication: the API client's credentials (checked in constant time), stateless access
 * tokens (HS256 JWTs any replica sharing the key can verify), and the bearer check on /api/v1 routes.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Metrics, TokenFailureReason } from './metrics.js';

/** The `iss` of every access token. */
export const TOKEN_ISSUER = 'dsr-agent';
/** The `aud` of every access token. */
export const TOKEN_AUDIENCE = 'dsr-agent-api';
/** Access token lifetime in seconds. Default 900 (15 min). */
export const DEFAULT_TOKEN_TTL_SECONDS = 15 * 60;
/** Clock skew allowed between replicas when checking exp/iat, in seconds. */
const CLOCK_TOLERANCE_SECONDS = 5;

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

/** Sign an access token for `clientId`: HS256, iss/aud/sub/jti/iat/exp, valid `ttlSeconds`. */
export async function issueAccessToken(key: Uint8Array, clientId: string, ttlSeconds: number = DEFAULT_TOKEN_TTL_SECONDS): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setSubject(clientId)
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(key);
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

/** Verify an `Authorization` header's bearer token; resolves to the client id, rejects with {@link BearerError}. */
export async function verifyBearer(key: Uint8Array, header: string | undefined): Promise<string> {
  if (!header) throw new BearerError('bearer_missing', `the Authorization header is missing; send "Authorization: Bearer <token>" and ${GET_TOKEN}`);
  const m = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)\s*$/i.exec(header);
  if (!m) throw new BearerError('bearer_malformed', `the Authorization header is not "Bearer <token>"; ${GET_TOKEN}`);
  try {
    const { payload } = await jwtVerify(m[1]!, key, {
      algorithms: ['HS256'],
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    });
    return payload.sub!;
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw new BearerError('bearer_expired', `the access token has expired; ${GET_TOKEN}`);
    if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) {
      throw new BearerError('bearer_malformed', `the bearer token is not a valid JWT; ${GET_TOKEN}`);
    }
    // Forged, wrong algorithm (e.g. "none"), wrong issuer or audience, or signed with a rotated secret.
    throw new BearerError('bearer_invalid', `the access token was not issued by this agent or is no longer valid (the API client secret may have been rotated); ${GET_TOKEN}`);
  }
}

/** An onRequest hook that refuses requests without a valid bearer token (401 invalid_token, RFC 6750 §3). */
export function makeBearerHook(key: Uint8Array, metrics: Metrics) {
  return async function requireBearer(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      await verifyBearer(key, request.headers.authorization);
    } catch (err) {
      if (!(err instanceof BearerError)) throw err;
      metrics.tokenFailed(err.reason);
      request.log.info({ reason: err.reason }, 'bearer token refused');
      // One challenge for every case, a missing header included, so clients need a single code path.
      return reply.code(401).header('www-authenticate', 'Bearer realm="dsr-agent", error="invalid_token"').send({ error: 'invalid_token', message: err.message });
    }
  };
}
