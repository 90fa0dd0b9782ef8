/**
 * GCP: secrets from Google Cloud Secret Manager.
 *
 * Transport: Secret Manager's REST API (`GET https://secretmanager.googleapis.com/v1/{name}:access` →
 * `{payload: {data: base64, dataCrc32c}}`), called through a google-auth-library client (`authClient.request`:
 * gaxios, with the access token, retries on 408/429/5xx and network errors, and an AbortSignal). Not
 * `@google-cloud/secret-manager`: its REST transport (`fallback: true`) was tried and works against a local
 * server, but with the installed versions (secret-manager 6.3, google-gax 5.0.8, google-auth-library 10.x):
 * - a hanging request is never cut off: the REST stub ignores the call's deadline (`timeout`), so one
 *   unresponsive endpoint would stall a job indefinitely;
 * - HTTP errors surface as raw GaxiosErrors carrying HTTP codes, not decoded GoogleErrors, so gax's retry
 *   codes (UNAVAILABLE, RESOURCE_EXHAUSTED) never match (googleapis/gax-nodejs#1803);
 * - the generated client logs every response, the secret's payload included, when GOOGLE_SDK_NODE_LOGGING
 *   enables its logger; here a value never reaches a log;
 * - for a service-account key it signs a self-signed JWT for the public host instead of getting an access
 *   token, which a regional, private or local endpoint need not accept.
 * One GET needs none of the rest (protobuf loading, gRPC), so the REST call is made directly.
 *
 * Endpoint: GCP_SECRET_MANAGER_ENDPOINT when set (a private endpoint, a test server such as
 * `http://127.0.0.1:8085`); else `secretmanager.<location>.rep.googleapis.com` for a regional secret
 * (`projects/p/locations/<location>/secrets/…`), else `secretmanager.googleapis.com`.
 *
 * Auth: the service-account key from GOOGLE_APPLICATION_CREDENTIALS_JSON (the JSON itself, DataGrail's
 * variable) or GOOGLE_APPLICATION_CREDENTIALS (its path), else Application Default Credentials (on
 * GCE/GKE/Cloud Run: the metadata server). A key is exchanged for an access token at the key's `token_uri`
 * (OAuth 2.0 JWT bearer grant, as Google's Python and Go libraries do; google-auth-library for Node posts to
 * https://oauth2.googleapis.com/token whatever the key says, so its token request is redirected when the
 * key's `token_uri` differs).
 *
 * google-auth-library is imported on the first `get` (see {@link lazySource}), so other providers never load it.
 */
import { readFile } from 'node:fs/promises';
import type { AgentEnv } from '../env.js';
import { AgentError, ErrorCodes } from '../errors.js';
import { lazySource, makeOptionChecker, type CredentialsProvider } from './provider.js';
import { describeJsonKind, jsonErrorPosition, makeInvalidSecretError, parseSecret } from './secret.js';
import type { Secret, SecretsSource } from './source.js';

const PROVIDER = 'GCP';
const DEFAULT_TIMEOUT_MS = 30 * 1000; // 30 s
const SCOPES = ['https://www.googleapis.com/auth/cloud-platform'];
/** Where google-auth-library posts a service account's JWT assertion, whatever the key's token_uri. */
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
const GRANT = "grant the agent's service account the Secret Manager Secret Accessor role (roles/secretmanager.secretAccessor)";

/** A Secret Manager secret id: 1–255 letters, digits, hyphens and underscores. */
const SECRET_ID = /^[A-Za-z0-9_-]{1,255}$/;
/** A secret (version) resource name, global or regional. */
const RESOURCE = /^projects\/[A-Za-z0-9.:-]+\/(?:locations\/[a-z0-9-]+\/)?secrets\/[A-Za-z0-9_-]{1,255}(?:\/versions\/[A-Za-z0-9_-]+)?$/;
/** A project id (6–30 lowercase letters, digits, hyphens; legacy ones prefixed with `domain:`) or number. */
const PROJECT = /^(?:(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})$/;

/**
 * The secret version a credentials_location names: a bare secret id → `projects/<projectId>/secrets/<id>/versions/latest`;
 * a `projects/…/secrets/<id>` path → its `latest` version; a `projects/…/secrets/<id>/versions/<v>` path as it
 * is. Undefined for anything else.
 */
export function secretVersionName(location: string, projectId: string): string | undefined {
  if (SECRET_ID.test(location)) return `projects/${projectId}/secrets/${location}/versions/latest`;
  if (!RESOURCE.test(location)) return undefined;
  return location.includes('/versions/') ? location : `${location}/versions/latest`;
}

/** Options of {@link makeGcpSecretManagerSource}. */
export interface GcpSecretManagerOptions {
  /** The project bare secret names live in. */
  projectId: string;
  /** AgentEnv.gcp: credentialsJson / credentialsFile, secretManagerEndpoint. */
  gcp?: AgentEnv['gcp'];
  /** Cap on one read, token exchange and SDK retries included, in milliseconds. Default 30_000 (30 s). */
  timeoutMs?: number;
}

const DEFAULT_BASE = 'https://secretmanager.googleapis.com';

/**
 * Where to read the version `name` from: `endpoint` (GCP_SECRET_MANAGER_ENDPOINT, as a base URL) when set;
 * else the regional endpoint for a regional secret (`projects/p/locations/<l>/…` →
 * `https://secretmanager.<l>.rep.googleapis.com`); else https://secretmanager.googleapis.com.
 */
export function secretManagerBaseUrl(name: string, endpoint?: string): string {
  if (endpoint) return endpointBase(endpoint);
  const region = /^projects\/[^/]+\/locations\/([a-z0-9-]+)\//.exec(name)?.[1];
  return region ? `https://secretmanager.${region}.rep.googleapis.com` : DEFAULT_BASE;
}

/** The base URL for GCP_SECRET_MANAGER_ENDPOINT: a host (HTTPS) or an http(s) URL without a path. */
function endpointBase(endpoint: string): string {
  let url: URL | undefined;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `https://${endpoint}`);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || (url.pathname !== '/' && url.pathname !== '') || url.search) {
    throw new AgentError(
      ErrorCodes.SECRET_PROVIDER_ERROR,
      `${PROVIDER}: GCP_SECRET_MANAGER_ENDPOINT ${JSON.stringify(endpoint)} is not an endpoint: set a host ` +
        `(secretmanager.europe-west1.rep.googleapis.com) or a URL without a path (http://127.0.0.1:8085).`,
    );
  }
  return url.origin;
}

/** The service-account key (or other ADC JSON) from the environment, or undefined for Application Default Credentials. */
async function loadCredentials(gcp: AgentEnv['gcp'] | undefined): Promise<Record<string, unknown> | undefined> {
  let text: string;
  let origin: string;
  if (gcp?.credentialsJson) {
    text = gcp.credentialsJson;
    origin = 'GOOGLE_APPLICATION_CREDENTIALS_JSON';
  } else if (gcp?.credentialsFile) {
    origin = `GOOGLE_APPLICATION_CREDENTIALS (${gcp.credentialsFile})`;
    try {
      text = await readFile(gcp.credentialsFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new AgentError(
        ErrorCodes.SECRET_PROVIDER_ERROR,
        `${PROVIDER}: cannot read the service-account key file ${gcp.credentialsFile} (${code}): fix GOOGLE_APPLICATION_CREDENTIALS.`,
        { cause: err },
      );
    }
  } else {
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // No cause: the SyntaxError quotes the text, a private key.
    throw new AgentError(
      ErrorCodes.SECRET_PROVIDER_ERROR,
      `${PROVIDER}: ${origin} is not valid JSON${jsonErrorPosition(err)}: it must be a service-account key file's content.`,
    );
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new AgentError(
      ErrorCodes.SECRET_PROVIDER_ERROR,
      `${PROVIDER}: ${origin} holds ${describeJsonKind(json)}: it must be a service-account key (a JSON object).`,
    );
  }
  return json as Record<string, unknown>;
}

/** The parts of google-auth-library's clients used here (its nested gaxios has its own types). */
interface AuthClientLike {
  request<T>(options: {
    url: string;
    method: 'GET';
    responseType: 'json';
    signal: AbortSignal;
    retryConfig: Record<string, unknown>;
  }): Promise<{ data: T }>;
  transporter?: { interceptors?: { request?: { add(interceptor: { resolved?: (o: TransportOptions) => TransportOptions }): void } } };
}
interface TransportOptions {
  url?: string | URL;
}

/** Send `client`'s token requests to `tokenUri` instead of Google's fixed token URL. */
function redirectTokenRequests(client: AuthClientLike, tokenUri: string): void {
  client.transporter?.interceptors?.request?.add({
    resolved: (options) => {
      if (options.url !== undefined && String(options.url) === GOOGLE_TOKEN_URL) options.url = new URL(tokenUri);
      return options;
    },
  });
}

/**
 * Why google-auth-library refused the credentials ("The incoming JSON object does not contain a client_email
 * field"): its message, unless it quotes any value of the key file.
 */
function describeLoadError(err: unknown, credentials: Record<string, unknown> | undefined): string {
  const e = asError(err);
  if (!e || !e.message) return describeGcpError(err);
  const values = Object.values(credentials ?? {}).filter((v): v is string => typeof v === 'string' && v.length >= 8);
  if (values.some((v) => e.message.includes(v) || e.message.includes(v.slice(0, 40)))) return e.name;
  return shorten(e.message);
}

/** CRC32C (Castagnoli), which Secret Manager reports for each payload as `dataCrc32c`. */
function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** An AccessSecretVersionResponse, as far as it is read. */
interface AccessResponse {
  payload?: { data?: unknown; dataCrc32c?: unknown };
}

/** Reject with a timeout error when `signal` aborts first (a token request takes no signal). */
function withSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(Object.assign(new Error('timed out'), { name: 'TimeoutError' }));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * GCP Secret Manager over REST (see the module comment for transport, endpoint and auth). `location` is a
 * secret id or a resource name (see {@link secretVersionName}); the version's payload must be a UTF-8 JSON object.
 */
export function makeGcpSecretManagerSource(options: GcpSecretManagerOptions): SecretsSource {
  const { projectId } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const gcp = options.gcp;
  return lazySource(async () => {
    const override = gcp?.secretManagerEndpoint ? endpointBase(gcp.secretManagerEndpoint) : undefined;
    const credentials = await loadCredentials(gcp);
    const { GoogleAuth } = await import('google-auth-library');
    let authClient: AuthClientLike;
    try {
      authClient = (await new GoogleAuth({ scopes: SCOPES, ...(credentials ? { credentials } : {}) }).getClient()) as unknown as AuthClientLike;
    } catch (err) {
      const source = credentials ? 'the service-account key' : 'Application Default Credentials';
      throw new AgentError(
        ErrorCodes.SECRET_PROVIDER_ERROR,
        `${PROVIDER}: ${source} could not be loaded (${describeLoadError(err, credentials)}). Set GOOGLE_APPLICATION_CREDENTIALS_JSON ` +
          `or GOOGLE_APPLICATION_CREDENTIALS to a service-account key, or run the agent with an attached service account.`,
      );
    }
    const tokenUri = credentials?.type === 'service_account' ? credentials.token_uri : undefined;
    if (typeof tokenUri === 'string' && tokenUri !== GOOGLE_TOKEN_URL) redirectTokenRequests(authClient, tokenUri);
    return {
      async get(location) {
        const name = secretVersionName(location, projectId);
        if (!name) {
          throw new AgentError(
            ErrorCodes.SECRET_NOT_FOUND,
            `${PROVIDER}: there is no secret at ${location}: a GCP credentials_location is a secret id (letters, digits, ` +
              `hyphens, underscores) or a resource name projects/<project>/secrets/<id>[/versions/<version>]. ` +
              `Fix the connection's credentials_location.`,
          );
        }
        const base = secretManagerBaseUrl(name, override);
        const where = base === DEFAULT_BASE ? '' : ` at ${base}`;
        const signal = AbortSignal.timeout(timeoutMs);
        let response: AccessResponse;
        try {
          const answer = await withSignal(
            authClient.request<AccessResponse>({
              url: `${base}/v1/${name}:access`,
              method: 'GET',
              responseType: 'json',
              signal,
              retryConfig: { retry: 3, noResponseRetries: 2, httpMethodsToRetry: ['GET'] },
            }),
            signal,
          );
          response = answer.data;
        } catch (err) {
          throw toAgentError(err, location, name, where, timeoutMs);
        }
        return toSecret(response, location, name, where);
      },
    };
  });
}

/** The Secret in an AccessSecretVersionResponse; errors never quote the payload. */
function toSecret(response: AccessResponse, location: string, name: string, where: string): Secret {
  const payload = typeof response === 'object' && response !== null ? response.payload : undefined;
  if (typeof payload !== 'object' || payload === null) {
    // Not Secret Manager's answer (gaxios hands over unparsable text as a string): say so without quoting it.
    throw new AgentError(
      ErrorCodes.SECRET_PROVIDER_ERROR,
      `${PROVIDER}: reading ${location === name ? location : `${location} (${name})`}${where} failed: the answer is not ` +
        `an AccessSecretVersion response. Check GCP_SECRET_MANAGER_ENDPOINT if set, then retry.`,
    );
  }
  if (payload.data === undefined || payload.data === null || payload.data === '') {
    throw makeInvalidSecretError(PROVIDER, location, 'its payload is empty');
  }
  if (typeof payload.data !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(payload.data)) {
    throw makeInvalidSecretError(PROVIDER, location, 'its payload is not base64 data');
  }
  const bytes = Buffer.from(payload.data, 'base64');
  if (payload.dataCrc32c !== undefined && Number(payload.dataCrc32c) !== crc32c(bytes)) {
    throw new AgentError(
      ErrorCodes.SECRET_PROVIDER_ERROR,
      `${PROVIDER}: the payload of ${location} does not match its checksum (dataCrc32c): it was corrupted in transit. Retry.`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw makeInvalidSecretError(PROVIDER, location, 'its payload is not UTF-8 text');
  }
  return parseSecret(text, PROVIDER, location);
}

/**
 * What a failure amounts to. google-auth-library reports an HTTP error as a GaxiosError: from Secret Manager
 * with a google.rpc.Status body (`{error: {code, message, status: "NOT_FOUND"}}`), from a token endpoint with
 * an OAuth error (`{error: "invalid_grant", error_description}`); a network failure as a GaxiosError with the
 * system error's code (ECONNREFUSED) and no response.
 */
interface GcpFailure {
  /** The google.rpc.Code name, e.g. NOT_FOUND. */
  readonly rpc?: string;
  readonly http?: number;
  /** True for an OAuth token endpoint's refusal (invalid_grant, invalid_client…). */
  readonly oauth: boolean;
  /** The service's own words, safe to show. */
  readonly detail?: string;
  /** A short tag for messages: "NOT_FOUND", "HTTP 503", "ECONNREFUSED". */
  readonly tag?: string;
  /** True when the error may be a cause: nothing in it can hold a secret, an assertion or a token. */
  readonly safe: boolean;
  /** True when the request was cut off by the timeout. */
  readonly timedOut: boolean;
}

function shorten(text: string): string {
  const line = text.split(/\r?\n/, 1)[0].trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

function classify(err: Error): GcpFailure {
  const e = err as Error & { code?: unknown; status?: unknown; response?: { status?: unknown; data?: unknown } };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const timedOut = err.name === 'TimeoutError' || err.name === 'AbortError' || code === 'TimeoutError' || code === 'AbortError';
  if (err.name === 'GaxiosError' || 'config' in err) {
    // Its `config` holds the request (a token-exchange assertion, a bearer token): never a cause. It is thrown
    // only for error answers (never for a 2xx, which holds the secret), so its message and data can be shown.
    const status = typeof e.status === 'number' ? e.status : typeof e.response?.status === 'number' ? e.response.status : undefined;
    const data = e.response?.data as { error?: unknown; error_description?: unknown } | undefined;
    if (data && typeof data === 'object' && typeof data.error === 'string') {
      const description = typeof data.error_description === 'string' ? `: ${data.error_description}` : '';
      return { http: status, oauth: true, detail: shorten(`${data.error}${description}`), tag: status ? `HTTP ${status}` : undefined, safe: false, timedOut };
    }
    const apiError = data && typeof data === 'object' && data.error && typeof data.error === 'object' ? (data.error as { status?: unknown; message?: unknown }) : undefined;
    if (apiError) {
      const rpc = typeof apiError.status === 'string' ? apiError.status : undefined;
      const detail = typeof apiError.message === 'string' ? shorten(apiError.message) : undefined;
      return { rpc, http: status, oauth: false, detail, tag: rpc ?? `HTTP ${status}`, safe: false, timedOut };
    }
    // An error answer that is not Google's JSON (a proxy's page), or no answer at all (ECONNREFUSED).
    return { http: status, oauth: false, detail: shorten(err.message), tag: status !== undefined ? `HTTP ${status}` : code, safe: false, timedOut };
  }
  if (code && /^E[A-Z_]+$/.test(code)) return { oauth: false, detail: shorten(err.message), tag: code, safe: true, timedOut };
  // Anything else (a SyntaxError, a library's error) may quote what it was given: name only.
  return { oauth: false, safe: false, timedOut };
}

/** "NOT_FOUND: Secret [...] not found or has no versions.", "HTTP 400: invalid_grant: …", "ECONNREFUSED: …". */
function describeGcpError(error: unknown): string {
  const err = asError(error);
  if (!err) return 'unknown error';
  const f = classify(err);
  const head = f.tag ?? ('config' in err ? 'GaxiosError' : err.name);
  return f.detail ? `${head}: ${f.detail}` : head;
}

/**
 * Turn what the access call threw into an AgentError naming the location (and the resource name):
 * NOT_FOUND (404) → SECRET_NOT_FOUND; PERMISSION_DENIED (403), UNAUTHENTICATED (401) or a refused token
 * exchange → SECRET_ACCESS_DENIED; anything else → SECRET_PROVIDER_ERROR, with the error as cause only when
 * nothing in it can hold a secret or a credential.
 */
function toAgentError(err: unknown, location: string, name: string, where: string, timeoutMs: number): AgentError {
  if (err instanceof AgentError) return err;
  const e = asError(err) ?? new Error(String(err));
  const f = classify(e);
  const what = name === location ? location : `${location} (${name})`;
  if (!f.oauth && (f.rpc === 'NOT_FOUND' || (f.rpc === undefined && f.http === 404))) {
    return new AgentError(
      ErrorCodes.SECRET_NOT_FOUND,
      `${PROVIDER}: there is no secret at ${what}${where}. Create it (with an enabled version), or fix the ` +
        `connection's credentials_location (or the project_id option).`,
    );
  }
  if (!f.oauth && (f.rpc === 'PERMISSION_DENIED' || (f.rpc === undefined && f.http === 403))) {
    return new AgentError(
      ErrorCodes.SECRET_ACCESS_DENIED,
      `${PROVIDER}: access to ${what}${where} was denied (${describeGcpError(e)}): ${GRANT} on the secret or the ` +
        `project. Secret Manager also answers so for a secret that does not exist.`,
    );
  }
  if (f.rpc === 'UNAUTHENTICATED' || f.http === 401 || (f.oauth && f.http !== undefined && f.http < 500)) {
    return new AgentError(
      ErrorCodes.SECRET_ACCESS_DENIED,
      `${PROVIDER}: Google rejected the agent's credentials (${describeGcpError(e)}) reading ${what}${where}. Check ` +
        `GOOGLE_APPLICATION_CREDENTIALS_JSON or GOOGLE_APPLICATION_CREDENTIALS (a valid, enabled service-account key) ` +
        `or the attached service account, then ${GRANT}.`,
    );
  }
  if (f.tag?.startsWith('ERR_OSSL')) {
    return new AgentError(
      ErrorCodes.SECRET_PROVIDER_ERROR,
      `${PROVIDER}: the service-account key cannot sign a token request (${describeGcpError(e)}) reading ${what}: its ` +
        `private_key is not a valid PEM key. Download a new key for the service account and set it in ` +
        `GOOGLE_APPLICATION_CREDENTIALS_JSON or GOOGLE_APPLICATION_CREDENTIALS.`,
      { cause: e },
    );
  }
  const reason = f.timedOut || f.rpc === 'DEADLINE_EXCEEDED' ? `no answer within ${timeoutMs / 1000} s` : describeGcpError(e);
  return new AgentError(
    ErrorCodes.SECRET_PROVIDER_ERROR,
    `${PROVIDER}: reading ${what}${where} failed: ${reason}. Check that Secret Manager is reachable ` +
      `(GCP_SECRET_MANAGER_ENDPOINT if set) and the credentials, then retry.`,
    f.safe ? { cause: e } : {},
  );
}

/** `err` as an Error, one from another realm included (Node's own errors seen from a vm context). */
function asError(err: unknown): Error | undefined {
  const isError = (Error as { isError?: (value: unknown) => boolean }).isError;
  return err instanceof Error || isError?.(err) ? (err as Error) : undefined;
}

/**
 * GCP as a provider: option `project_id` (required), the project bare secret names live in. Credentials and
 * endpoint come from `ctx.env.gcp` (see {@link makeGcpSecretManagerSource}).
 */
export const gcpSecretManagerProvider: CredentialsProvider = {
  name: PROVIDER,
  check(options) {
    const c = makeOptionChecker(options, ['project_id'], PROVIDER);
    const project = c.string('project_id', true, 'acme-prod');
    if (project !== undefined && !PROJECT.test(project)) {
      c.add('project_id', 'must be a Google Cloud project id (6–30 lowercase letters, digits and hyphens) or number, e.g. "acme-prod"');
    }
    return c.problems;
  },
  make(options, ctx) {
    return makeGcpSecretManagerSource({ projectId: options.project_id as string, gcp: ctx.env.gcp });
  },
};
