/**
 * POST /api/v1/token: the OAuth 2.0 client credentials grant (RFC 6749 §4.4). The client authenticates
 * with HTTP Basic or with client_id/client_secret in the form body (RFC 6749 §2.3.1), never both.
 */
import formbody from '@fastify/formbody';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { errorCodeOf, ErrorCodes, isAgentError } from '../../errors.js';
import { credentialsMatch, issueAccessToken, parseBasicAuth, type ApiClient, type ClientCredentials, type TokenKeys } from '../auth.js';
import { toClientError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { ref } from '../schemas.js';
import { makeThrottle, type Throttle } from '../throttle.js';

/** What the token route needs. */
export interface TokenRouteOptions {
  metrics: Metrics;
  /** The API client secret as stored now and its signing key; undefined when the config has no datagrail_agent_credentials_location. */
  tokenKeys: TokenKeys | undefined;
  /** Access token lifetime in seconds. Default 900. */
  tokenTtlSeconds: number;
  /** Failed-authentication throttle. Default: makeThrottle() with its defaults. */
  throttle?: Throttle;
}

type OAuthErrorCode = 'invalid_request' | 'invalid_client' | 'unsupported_grant_type' | 'temporarily_unavailable' | 'slow_down';

const FORM = 'application/x-www-form-urlencoded';

/** The token endpoint's own error answer (RFC 6749 §5.2); responses must never be cached. */
function oauthError(reply: FastifyReply, status: number, error: OAuthErrorCode, description: string): FastifyReply {
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
  if (error === 'invalid_client') reply.header('www-authenticate', 'Basic realm="dsr-agent"');
  return reply.code(status).send({ error, error_description: description });
}

/** Register POST /api/v1/token in its own context (the form parser and OAuth error shape stay local to it). */
export async function tokenRoutes(app: FastifyInstance, opts: TokenRouteOptions): Promise<void> {
  const { metrics, tokenKeys, tokenTtlSeconds } = opts;
  const throttle = opts.throttle ?? makeThrottle();
  await app.register(formbody);

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const known = toClientError(err);
    if (!known) {
      request.log.error({ err: { type: err.name, code: err.code } }, 'token request failed');
      return oauthError(reply, 500, 'temporarily_unavailable', `the agent failed unexpectedly; the log has the details under request id ${request.id}`);
    }
    metrics.tokenFailed('invalid_request');
    return oauthError(reply, known.status, 'invalid_request', known.body.message);
  });

  app.post(
    '/api/v1/token',
    {
      bodyLimit: 8 * 1024,
      schema: {
        summary: 'Get an access token (OAuth 2.0 client credentials grant)',
        description:
          'Authenticate with the client_id/client_secret pair stored at datagrail_agent_credentials_location, via HTTP Basic or the form body (not both). ' +
          'When the config has no datagrail_agent_credentials_location the endpoint answers 503 and the whole /api/v1 API is unusable.',
        tags: ['auth'],
        consumes: [FORM],
        body: ref('TokenRequest'),
        response: { 200: ref('TokenResponse'), 400: ref('OAuthError'), 401: ref('OAuthError'), 429: ref('OAuthError'), 503: ref('OAuthError') },
      },
      onRequest: async (request, reply) => {
        const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        if (type !== FORM) {
          metrics.tokenFailed('invalid_request');
          return oauthError(reply, 400, 'invalid_request', `send the token request as ${FORM} (RFC 6749 section 4.4), e.g. grant_type=client_credentials`);
        }
      },
    },
    async (request, reply) => {
      const body = request.body as Record<string, string | undefined>;
      const fail = (status: number, error: OAuthErrorCode, description: string) => {
        metrics.tokenFailed(error === 'temporarily_unavailable' ? 'credentials_unavailable' : error === 'slow_down' ? 'throttled' : error);
        request.log.info({ error }, 'token request refused');
        return oauthError(reply, status, error, description);
      };
      if (!tokenKeys) {
        return fail(503, 'temporarily_unavailable', 'the job API is disabled: set datagrail_agent_credentials_location in the config to the secret {"client_id", "client_secret"} that API clients authenticate with, then restart');
      }
      if (body.grant_type !== 'client_credentials') {
        return fail(400, 'unsupported_grant_type', 'grant_type must be client_credentials (the only grant this agent supports)');
      }

      let presented: ClientCredentials;
      const basic = parseBasicAuth(request.headers.authorization);
      if (basic === null) return fail(401, 'invalid_client', 'the Basic Authorization header is malformed: send base64(urlencode(client_id) ":" urlencode(client_secret))');
      if (basic) {
        if (body.client_secret !== undefined) return fail(400, 'invalid_request', 'use one client authentication method: HTTP Basic or client_id/client_secret in the body, not both');
        if (body.client_id !== undefined && body.client_id !== basic.clientId) return fail(400, 'invalid_request', 'client_id in the body differs from the one in the Basic Authorization header');
        presented = basic;
      } else if (body.client_id !== undefined && body.client_secret !== undefined) {
        presented = { clientId: body.client_id, clientSecret: body.client_secret };
      } else {
        return fail(401, 'invalid_client', 'client authentication is missing: send HTTP Basic credentials, or client_id and client_secret in the body');
      }

      // Locked out after repeated failures: answered before the credentials are even compared.
      const waitMs = throttle.retryAfterMs(request.ip, presented.clientId);
      if (waitMs > 0) {
        reply.header('retry-after', String(Math.ceil(waitMs / 1000)));
        return fail(429, 'slow_down', `too many failed authentications from this address or for this client; retry after ${Math.ceil(waitMs / 1000)} s`);
      }

      const unavailable = (err: unknown) => {
        if (isAgentError(err, ErrorCodes.SECRET_INVALID)) {
          request.log.error({ code: err.code }, 'the API client secret lacks client_id or client_secret');
          return fail(503, 'temporarily_unavailable', `the agent's API client secret is incomplete: store {"client_id", "client_secret"} at datagrail_agent_credentials_location`);
        }
        request.log.error({ code: errorCodeOf(err) ?? 'UNKNOWN', err: { message: isAgentError(err) ? err.message : 'unexpected error' } }, 'cannot read the API client secret');
        return fail(503, 'temporarily_unavailable', 'the agent cannot read its API client credentials from the credentials manager right now; retry later (the agent log says why)');
      };
      let expected: ApiClient;
      try {
        expected = await tokenKeys.current();
        // A mismatch may be a rotation the secrets cache has not seen yet: read the secret again (at most every 30 s).
        if (!credentialsMatch(presented, expected)) expected = (await tokenKeys.reread()) ?? expected;
      } catch (err) {
        return unavailable(err);
      }

      if (!credentialsMatch(presented, expected)) {
        throttle.failed(request.ip, presented.clientId);
        return fail(401, 'invalid_client', 'client authentication failed: the client_id or client_secret is wrong');
      }
      throttle.succeeded(request.ip, presented.clientId);

      const accessToken = await issueAccessToken(expected, tokenKeys.binding, tokenTtlSeconds);
      request.log.info('access token issued');
      return reply
        .header('cache-control', 'no-store')
        .header('pragma', 'no-cache')
        .send({ access_token: accessToken, token_type: 'Bearer', expires_in: tokenTtlSeconds });
    },
  );
}
