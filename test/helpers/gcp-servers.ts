/**
 * Local stand-ins for Google's OAuth 2.0 token endpoint and Secret Manager's REST API (node:http, or
 * node:https with a certificate), speaking the protocols the real google-auth-library and
 * @google-cloud/secret-manager (REST transport) use:
 *
 * - Token endpoint: `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`;
 *   the assertion is verified with `jose` against the service account's public key (RS256, issuer = the
 *   account's email, audience = https://oauth2.googleapis.com/token, the cloud-platform scope, unexpired) →
 *   `{access_token, expires_in, token_type}`, else 400 invalid_grant.
 * - Secret Manager: `GET /v1/projects/{p}/secrets/{s}/versions/{v}:access` with `Authorization: Bearer
 *   <issued token>` → `{name, payload: {data: base64, dataCrc32c}}`; 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
 *   404 NOT_FOUND answers shaped like the service's (google.rpc.Status in `error`).
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { jwtVerify } from 'jose';
import { toStoredText } from './aws-json-server.js';

/** The audience google-auth-library signs service-account assertions for. */
const GOOGLE_TOKEN_AUDIENCE = 'https://oauth2.googleapis.com/token';
const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';

/** A service-account key file's content and the public half of its key. */
export interface ServiceAccount {
  readonly json: Record<string, string>;
  readonly publicKey: KeyObject;
}

/** A service account with a fresh 2048-bit RSA key whose `token_uri` is `tokenUri`. */
export function makeServiceAccount(tokenUri: string, projectId = 'acme-prod'): ServiceAccount {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const email = `dsr-agent@${projectId}.iam.gserviceaccount.com`;
  return {
    publicKey,
    json: {
      type: 'service_account',
      project_id: projectId,
      private_key_id: randomBytes(20).toString('hex'),
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      client_email: email,
      client_id: '10' + String(Date.now()).padStart(19, '0'),
      auth_uri: 'https://accounts.google.com/o/oauth2/auth',
      token_uri: tokenUri,
      auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
      client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(email)}`,
      universe_domain: 'googleapis.com',
    },
  };
}

/** CRC32C (Castagnoli) of `data`, as Secret Manager reports it in `payload.dataCrc32c`. */
function crc32c(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** One request either fake received (no bodies: they hold assertions). */
export interface GcpRequest {
  readonly server: 'token' | 'secretmanager';
  readonly method: string;
  readonly path: string;
  readonly authorization?: string;
}

/** The started fakes. */
export interface FakeGcp {
  /** The Secret Manager endpoint, e.g. `https://127.0.0.1:41234` (GCP_SECRET_MANAGER_ENDPOINT). */
  readonly endpoint: string;
  /** The token endpoint, e.g. `https://127.0.0.1:41235/token` (the key's token_uri). */
  readonly tokenUri: string;
  /** A service account the token endpoint accepts (its token_uri is {@link tokenUri}). */
  readonly account: ServiceAccount;
  /** Add a version to `projects/<project>/secrets/<secret>` (strings as they are, else JSON; a Buffer as bytes); returns its number. */
  set(project: string, secret: string, value: unknown): number;
  /** Secret resource names (`projects/p/secrets/s`) whose access answers 403 PERMISSION_DENIED. */
  readonly deny: Set<string>;
  /** Secret resource names whose access never answers (the client must time out). */
  readonly hang: Set<string>;
  /** Raw answers to give, one per request, for a secret resource name before it is served normally. */
  readonly scripted: Map<string, { status: number; body: string }[]>;
  /** Every request, in order. */
  readonly requests: GcpRequest[];
  /** Access tokens issued so far. */
  readonly issued: ReadonlySet<string>;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function rpcError(res: http.ServerResponse, status: number, rpcStatus: string, message: string): void {
  send(res, status, { error: { code: status, message, status: rpcStatus } });
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function start(handler: Handler, tls?: { key: string; cert: string }): Promise<{ server: http.Server; base: string }> {
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function stop(server: http.Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
  });
}

/**
 * Start both fakes on 127.0.0.1 (HTTPS when `tls` is given), with a fresh service account and `secrets`
 * (`<project>/<secret>` → value) stored as version 1.
 */
export async function startFakeGcp(secrets: Record<string, unknown> = {}, tls?: { key: string; cert: string }): Promise<FakeGcp> {
  const store = new Map<string, Buffer[]>(); // "projects/p/secrets/s" → versions (1-based)
  const deny = new Set<string>();
  const hang = new Set<string>();
  const scripted = new Map<string, { status: number; body: string }[]>();
  const requests: GcpRequest[] = [];
  const issued = new Set<string>();
  let account: ServiceAccount | undefined;

  const set = (project: string, secret: string, value: unknown): number => {
    const key = `projects/${project}/secrets/${secret}`;
    const bytes = Buffer.isBuffer(value) ? value : Buffer.from(toStoredText(value), 'utf8');
    store.set(key, [...(store.get(key) ?? []), bytes]);
    return store.get(key)!.length;
  };
  for (const [path, value] of Object.entries(secrets)) {
    const [project, secret] = path.split('/');
    set(project, secret, value);
  }

  const token = await start((req, res) => {
    requests.push({ server: 'token', method: req.method ?? '', path: req.url ?? '' });
    readBody(req).then(async (body) => {
      if (req.method !== 'POST' || req.url !== '/token') {
        send(res, 404, { error: 'not_found', error_description: `No route for ${req.method} ${req.url}` });
        return;
      }
      const form = new URLSearchParams(body);
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
        send(res, 400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type.' });
        return;
      }
      try {
        const { payload } = await jwtVerify(form.get('assertion') ?? '', account!.publicKey, {
          algorithms: ['RS256'],
          issuer: account!.json.client_email,
          audience: GOOGLE_TOKEN_AUDIENCE,
          requiredClaims: ['iat', 'exp', 'scope'],
        });
        if (!String(payload.scope).split(' ').includes(CLOUD_PLATFORM)) throw new Error('scope');
      } catch {
        send(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
        return;
      }
      const accessToken = `ya29.${randomBytes(32).toString('base64url')}`;
      issued.add(accessToken);
      send(res, 200, { access_token: accessToken, expires_in: 3599, token_type: 'Bearer' });
    }, () => res.destroy());
  }, tls);

  const secretManager = await start((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({ server: 'secretmanager', method: req.method ?? '', path: url.pathname, authorization: req.headers.authorization });
    readBody(req).then(() => {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!bearer || !issued.has(bearer[1])) {
        rpcError(res, 401, 'UNAUTHENTICATED',
          'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.');
        return;
      }
      const match = /^\/v1\/(projects\/[^/]+\/secrets\/[^/]+)\/versions\/([^/:]+):access$/.exec(url.pathname);
      if (req.method !== 'GET' || !match) {
        rpcError(res, 404, 'NOT_FOUND', `No route for ${req.method} ${url.pathname}`);
        return;
      }
      const [, secret, wanted] = match;
      const resource = `${secret}/versions/${wanted}`;
      if (hang.has(secret)) return;
      const raw = scripted.get(secret)?.shift();
      if (raw) {
        res.writeHead(raw.status, { 'content-type': 'application/json; charset=UTF-8' });
        res.end(raw.body);
        return;
      }
      if (deny.has(secret)) {
        rpcError(res, 403, 'PERMISSION_DENIED', `Permission 'secretmanager.versions.access' denied for resource '${resource}' (or it may not exist).`);
        return;
      }
      const versions = store.get(secret) ?? [];
      const number = wanted === 'latest' ? versions.length : Number(wanted);
      const data = Number.isInteger(number) && number >= 1 ? versions[number - 1] : undefined;
      if (!data) {
        rpcError(res, 404, 'NOT_FOUND',
          versions.length ? `Secret Version [${resource}] not found.` : `Secret [${secret}] not found or has no versions.`);
        return;
      }
      send(res, 200, {
        name: `${secret.replace(/^projects\/[^/]+/, 'projects/123456789012')}/versions/${number}`,
        payload: { data: data.toString('base64'), dataCrc32c: String(crc32c(data)) },
      });
    }, () => res.destroy());
  }, tls);

  const tokenUri = `${token.base}/token`;
  account = makeServiceAccount(tokenUri);
  return {
    endpoint: secretManager.base,
    tokenUri,
    account,
    set,
    deny,
    hang,
    scripted,
    requests,
    issued,
    close: async () => {
      await Promise.all([stop(token.server), stop(secretManager.server)]);
    },
  };
}
