/**
 * Local stand-ins for Azure Key Vault and Entra ID (node:https, self-signed certificate), speaking the
 * protocols the real @azure/keyvault-secrets and @azure/identity use:
 *
 * - Key Vault: `GET /secrets/{name}[/{version}]?api-version=…` → `{value, id, attributes}`, with Key Vault's
 *   bearer challenge (a request without a valid token gets 401 and `WWW-Authenticate: Bearer
 *   authorization="https://login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"`), 404
 *   SecretNotFound and 403 Forbidden (RBAC) answers shaped like the service's.
 * - Entra ID (AZURE_AUTHORITY_HOST): `GET /<tenant>/v2.0/.well-known/openid-configuration` and
 *   `POST /<tenant>/oauth2/v2.0/token` (client_credentials with a client secret) → `{access_token, expires_in,
 *   token_type}`, or 401 invalid_client (AADSTS7000215) for a wrong secret; and an App Service managed-identity
 *   endpoint (`GET /msi/token?resource=…`, header X-IDENTITY-HEADER) for DefaultAzureCredential.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toStoredText } from './aws-json-server.js';

/** The service principal the fake Entra ID accepts. */
export const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const CLIENT_ID = '2b0a8f5e-0c1d-4e7a-9f3b-7d6c5e4a3b21';
export const CLIENT_SECRET = 'test-client-secret~value';
/** The X-IDENTITY-HEADER value the managed-identity endpoint expects (IDENTITY_HEADER). */
export const IDENTITY_HEADER = 'test-identity-header';

/** One request either fake received (no bodies: they may hold the client secret). */
export interface ReceivedRequest {
  readonly server: 'vault' | 'login';
  readonly method: string;
  readonly path: string;
  readonly authorization?: string;
}

/** A started Key Vault + Entra ID pair. */
export interface FakeAzure {
  /** The vault URL, e.g. `https://127.0.0.1:41234` (AZURE_KEYVAULT_URL). */
  readonly vaultUrl: string;
  /** The Entra ID authority host, e.g. `https://127.0.0.1:41235` (AZURE_AUTHORITY_HOST). */
  readonly authorityHost: string;
  /** The managed-identity endpoint (IDENTITY_ENDPOINT). */
  readonly identityEndpoint: string;
  /** Store a new version of a secret (strings as they are, anything else as JSON); returns its version id. */
  set(name: string, value: unknown): string;
  /** Secret names whose reads answer 403 Forbidden. */
  readonly deny: Set<string>;
  /** Secret names whose authenticated reads never answer (the client must time out). */
  readonly hang: Set<string>;
  /** Raw answers to authenticated reads of a secret name, one per request, before it is served normally. */
  readonly scripted: Map<string, { status: number; body: string }[]>;
  /** Every request, in order. */
  readonly requests: ReceivedRequest[];
  /** Tokens issued so far (client credentials and managed identity). */
  tokensIssued(): number;
  close(): Promise<void>;
}

interface Version {
  readonly id: string;
  readonly text: string;
  readonly created: number;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'x-ms-request-id': randomUUID(),
    ...headers,
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
  });
}

/** Start the fakes on 127.0.0.1 with `tls` (see makeSelfSignedCert), holding `secrets` (name → value). */
export async function startFakeAzure(tls: { key: string; cert: string }, secrets: Record<string, unknown> = {}): Promise<FakeAzure> {
  const store = new Map<string, Version[]>();
  const deny = new Set<string>();
  const hang = new Set<string>();
  const scripted = new Map<string, { status: number; body: string }[]>();
  const requests: ReceivedRequest[] = [];
  const tokens = new Set<string>();
  let vaultUrl = '';
  let authorityHost = '';

  const set = (name: string, value: unknown): string => {
    const version: Version = { id: randomBytes(16).toString('hex'), text: toStoredText(value), created: Math.floor(Date.now() / 1000) };
    const key = name.toLowerCase(); // Key Vault names are case-insensitive
    store.set(key, [...(store.get(key) ?? []), version]);
    return version.id;
  };
  for (const [name, value] of Object.entries(secrets)) set(name, value);

  const issue = (): string => {
    const token = `kv-${randomBytes(24).toString('base64url')}`;
    tokens.add(token);
    return token;
  };

  const vault = createServer(tls, (req, res) => {
    const url = new URL(req.url ?? '/', vaultUrl);
    requests.push({ server: 'vault', method: req.method ?? '', path: url.pathname, authorization: req.headers.authorization });
    readBody(req).then(() => {
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!auth || !tokens.has(auth[1])) {
        send(res, 401, { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }, {
          'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${TENANT_ID}", resource="https://vault.azure.net"`,
        });
        return;
      }
      if (!url.searchParams.get('api-version')) {
        send(res, 400, { error: { code: 'BadParameter', message: 'The request URI contains an invalid or missing api-version.' } });
        return;
      }
      const match = /^\/secrets\/([^/]+)(?:\/([^/]*))?$/.exec(url.pathname);
      if (req.method !== 'GET' || !match) {
        send(res, 404, { error: { code: 'NotFound', message: `No route for ${req.method} ${url.pathname}` } });
        return;
      }
      const name = decodeURIComponent(match[1]);
      const wanted = match[2] ? decodeURIComponent(match[2]) : '';
      if (hang.has(name)) return;
      const raw = scripted.get(name)?.shift();
      if (raw) {
        res.writeHead(raw.status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(raw.body);
        return;
      }
      if (deny.has(name)) {
        send(res, 403, {
          error: {
            code: 'Forbidden',
            message:
              "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n" +
              `Caller: appid=${CLIENT_ID};iss=https://sts.windows.net/${TENANT_ID}/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n` +
              `Resource: '/subscriptions/0/resourcegroups/rg/providers/microsoft.keyvault/vaults/test/secrets/${name}'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\n`,
            innererror: { code: 'ForbiddenByRbac' },
          },
        });
        return;
      }
      const versions = store.get(name.toLowerCase()) ?? [];
      const version = wanted ? versions.find((v) => v.id === wanted) : versions.at(-1);
      if (!version) {
        send(res, 404, {
          error: {
            code: 'SecretNotFound',
            message: `A secret with (name/id) ${wanted ? `${name}/${wanted}` : name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
          },
        });
        return;
      }
      send(res, 200, {
        value: version.text,
        id: `${vaultUrl}/secrets/${name}/${version.id}`,
        attributes: { enabled: true, created: version.created, updated: version.created, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 },
        tags: {},
      });
    }, () => res.destroy());
  });

  const login = createServer(tls, (req, res) => {
    const url = new URL(req.url ?? '/', authorityHost);
    requests.push({ server: 'login', method: req.method ?? '', path: url.pathname });
    readBody(req).then((body) => {
      const metadata = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(url.pathname);
      if (req.method === 'GET' && metadata) {
        const base = `${authorityHost}/${metadata[1]}`;
        send(res, 200, {
          token_endpoint: `${base}/oauth2/v2.0/token`,
          authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
          device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
          end_session_endpoint: `${base}/oauth2/v2.0/logout`,
          jwks_uri: `${authorityHost}/${metadata[1]}/discovery/v2.0/keys`,
          issuer: `${authorityHost}/${metadata[1]}/v2.0`,
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
          tenant_region_scope: 'WW',
        });
        return;
      }
      const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
      if (req.method === 'POST' && token) {
        const form = new URLSearchParams(body);
        if (token[1] !== TENANT_ID) {
          send(res, 400, { error: 'invalid_tenant', error_description: `AADSTS90002: Tenant '${token[1]}' not found.`, error_codes: [90002] });
        } else if (form.get('grant_type') !== 'client_credentials' || form.get('client_id') !== CLIENT_ID) {
          send(res, 400, { error: 'unauthorized_client', error_description: 'AADSTS700016: Application not found in the directory.', error_codes: [700016] });
        } else if (form.get('client_secret') !== CLIENT_SECRET) {
          send(res, 401, {
            error: 'invalid_client',
            error_description: `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${CLIENT_ID}'.`,
            error_codes: [7000215],
          });
        } else if (form.get('scope') !== 'https://vault.azure.net/.default') {
          send(res, 400, { error: 'invalid_scope', error_description: `AADSTS70011: The provided value for scope ${form.get('scope')} is not valid.`, error_codes: [70011] });
        } else {
          send(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: issue() });
        }
        return;
      }
      if (req.method === 'GET' && url.pathname === '/msi/token') {
        if (req.headers['x-identity-header'] !== IDENTITY_HEADER) {
          send(res, 401, { statusCode: 401, message: 'Unauthorized: X-IDENTITY-HEADER is missing or invalid.' });
        } else if (url.searchParams.get('resource') !== 'https://vault.azure.net') {
          send(res, 400, { statusCode: 400, message: `Unknown resource ${url.searchParams.get('resource')}` });
        } else {
          const expiresOn = Math.floor(Date.now() / 1000) + 3600;
          send(res, 200, {
            access_token: issue(),
            expires_on: String(expiresOn),
            resource: 'https://vault.azure.net',
            token_type: 'Bearer',
            client_id: CLIENT_ID,
          });
        }
        return;
      }
      send(res, 404, { error: 'not_found', error_description: `No route for ${req.method} ${url.pathname}` });
    }, () => res.destroy());
  });

  vaultUrl = await listen(vault);
  authorityHost = await listen(login);
  return {
    vaultUrl,
    authorityHost,
    identityEndpoint: `${authorityHost}/msi/token`,
    set,
    deny,
    hang,
    scripted,
    requests,
    tokensIssued: () => tokens.size,
    close: async () => {
      await Promise.all([close(vault), close(login)]);
    },
  };
}
