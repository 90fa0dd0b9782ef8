/**
 * AzureKeyVault: secrets from Azure Key Vault, through the real @azure/keyvault-secrets SecretClient and an
 * @azure/identity credential. Both packages are imported on the first `get` (see {@link lazySource}), so a
 * config that uses another provider never loads them.
 */
import type { TokenCredential } from '@azure/identity';
import type { AgentEnv } from '../env.js';
import { AgentError, ErrorCodes } from '../errors.js';
import { lazySource, makeOptionChecker, type CredentialsProvider } from './provider.js';
import { makeInvalidSecretError, parseSecret } from './secret.js';
import type { SecretsSource } from './source.js';

const PROVIDER = 'AzureKeyVault';
const DEFAULT_TIMEOUT_MS = 30 * 1000; // 30 s
const ROLE_HINT =
  'grant the agent\'s identity the "Key Vault Secrets User" role on the vault (or, on a vault using access ' +
  'policies, the secret "Get" permission)';

/** A Key Vault name: 3–24 letters, digits and hyphens, starting with a letter, not ending with a hyphen. */
const VAULT_NAME = /^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$/;
/** A credentials_location: a secret name (1–127 letters, digits, hyphens), optionally `/<version>`. */
const LOCATION = /^([0-9A-Za-z-]{1,127})(?:\/([0-9A-Za-z]{1,64}))?$/;
/**
 * Domains whose vaults answer Key Vault's bearer challenge with a resource the SDK can verify (public,
 * China, US Government clouds; Managed HSM).
 */
const KEY_VAULT_DOMAINS = ['vault.azure.net', 'vault.azure.cn', 'vault.usgovcloudapi.net', 'vault.microsoftazure.de', 'managedhsm.azure.net'];

/**
 * The vault URL for the `secret_vault` option: `https://<name>.vault.azure.net`, or `override`
 * (AZURE_KEYVAULT_URL: private endpoints, tests) when set. A `secret_vault` that is already an https URL is
 * used as it is.
 */
export function keyVaultUrl(secretVault: string, override?: string): string {
  if (override) return override.replace(/\/+$/, '');
  if (/^https:\/\//i.test(secretVault)) return secretVault.replace(/\/+$/, '');
  return `https://${secretVault.toLowerCase()}.vault.azure.net`;
}

/** Options of {@link makeAzureKeyVaultSource}. */
export interface AzureKeyVaultOptions {
  /** The vault, e.g. `https://acme-secrets.vault.azure.net` (see {@link keyVaultUrl}). */
  vaultUrl: string;
  /** AgentEnv.azure: a service principal (all three of tenantId, clientId, clientSecret) and the authority host. */
  azure?: AgentEnv['azure'];
  /** A ready credential; when given, `azure` is not used to build one. */
  credential?: TokenCredential;
  /** Cap on one read (token request, challenge and SDK retries included), in milliseconds. Default 30_000 (30 s). */
  timeoutMs?: number;
  /** SDK retries after a failed attempt (network error, 408, 429, 5xx). Default: the SDK's (3). */
  maxRetries?: number;
}

/** True when `host` is a Key Vault host in one of Azure's clouds (the bearer challenge can be verified). */
function isKeyVaultHost(host: string): boolean {
  const h = host.toLowerCase();
  return KEY_VAULT_DOMAINS.some((domain) => h.endsWith(`.${domain}`));
}

/**
 * AzureKeyVault via the real SDK. Credential: `ClientSecretCredential` when `azure` has a tenant, client id
 * and client secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), else `DefaultAzureCredential`
 * (managed identity, workload identity, Azure CLI…). With an AZURE_AUTHORITY_HOST that is not one of Azure's
 * clouds (Azure Stack, a local test server), instance discovery is disabled: Entra ID's discovery service
 * would not know that host. With a vault URL outside Azure's Key Vault domains (AZURE_KEYVAULT_URL pointing
 * at a private host or a test server), the SDK's check that the bearer challenge names a matching resource
 * is turned off, since it can only fail there; the operator chose that URL.
 *
 * `location` is a secret name, optionally `<name>/<version>`; the secret's value must be a JSON object.
 */
export function makeAzureKeyVaultSource(options: AzureKeyVaultOptions): SecretsSource {
  const { vaultUrl } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return lazySource(async () => {
    const [{ SecretClient }, identity] = await Promise.all([import('@azure/keyvault-secrets'), import('@azure/identity')]);
    const azure = options.azure;
    const authorityHost = azure?.authorityHost;
    const knownAuthority = Object.values(identity.AzureAuthorityHosts).map((h) => h.replace(/\/+$/, '').toLowerCase());
    const credentialOptions = {
      ...(authorityHost ? { authorityHost } : {}),
      disableInstanceDiscovery: authorityHost !== undefined && !knownAuthority.includes(authorityHost.replace(/\/+$/, '').toLowerCase()),
    };
    const credential =
      options.credential ??
      (azure?.tenantId && azure.clientId && azure.clientSecret
        ? new identity.ClientSecretCredential(azure.tenantId, azure.clientId, azure.clientSecret, credentialOptions)
        : new identity.DefaultAzureCredential(credentialOptions));
    let host: string;
    try {
      host = new URL(vaultUrl).hostname;
    } catch {
      throw new AgentError(
        ErrorCodes.SECRET_PROVIDER_ERROR,
        `${PROVIDER}: the vault URL ${JSON.stringify(vaultUrl)} is not a URL: fix AZURE_KEYVAULT_URL (e.g. https://acme-secrets.vault.azure.net) or the secret_vault option.`,
      );
    }
    const client = new SecretClient(vaultUrl, credential, {
      disableChallengeResourceVerification: !isKeyVaultHost(host),
      ...(options.maxRetries !== undefined ? { retryOptions: { maxRetries: options.maxRetries } } : {}),
    });
    return {
      async get(location) {
        const match = LOCATION.exec(location);
        if (!match) {
          throw new AgentError(
            ErrorCodes.SECRET_NOT_FOUND,
            `${PROVIDER}: there is no secret at ${location} in ${vaultUrl}: a Key Vault credentials_location is a ` +
              `secret name (letters, digits and hyphens), optionally followed by /<version>. Fix the connection's credentials_location.`,
          );
        }
        const [, name, version] = match;
        let value: string | undefined;
        try {
          const secret = await client.getSecret(name, { version, abortSignal: AbortSignal.timeout(timeoutMs) });
          value = secret.value;
        } catch (err) {
          throw toAgentError(err, location, vaultUrl, timeoutMs);
        }
        if (typeof value !== 'string') throw makeInvalidSecretError(PROVIDER, location, 'it has no value');
        return parseSecret(value, PROVIDER, location);
      },
    };
  });
}

/** An Error's HTTP status (RestError.statusCode, AuthenticationError.statusCode), if any. */
function statusOf(err: Error): number | undefined {
  const status = (err as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' ? status : undefined;
}

/**
 * "RestError (HTTP 429, Throttled): Too many requests", never quoting a response body: a RestError's message
 * is kept only when the service answered with an error (a failure to parse a 2xx answer quotes the answer,
 * which holds the secret).
 */
function describeAzureError(error: unknown): string {
  const err = asError(error);
  if (!err) return 'unknown error';
  const status = statusOf(err);
  const code = (err as { code?: unknown }).code;
  const tags = [status !== undefined ? `HTTP ${status}` : '', typeof code === 'string' ? code : ''].filter(Boolean);
  const head = tags.length ? `${err.name} (${tags.join(', ')})` : err.name;
  if (code === 'PARSE_ERROR' || err.name === 'SyntaxError') return `the answer is not valid JSON (${head})`;
  if (!safeMessage(err) || !err.message) return head;
  return `${head}: ${firstLine(err.message)}`;
}

/** The first line of a message, at most 300 characters (Entra ID and Key Vault messages run long). */
function firstLine(message: string): string {
  const line = message.split(/\r?\n/, 1)[0].trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** False when the error may quote a successful answer (the secret) or carries the request/response. */
function safeMessage(err: Error): boolean {
  if (err.name === 'SyntaxError') return false;
  if (err.name !== 'RestError') return true;
  const status = statusOf(err);
  return (err as { code?: unknown }).code !== 'PARSE_ERROR' && (status === undefined || status >= 400);
}

/** What Entra ID said, e.g. "invalid_client: AADSTS7000215: Invalid client secret provided." */
function describeAuthenticationError(err: Error): string {
  const response = (err as { errorResponse?: { error?: unknown; errorDescription?: unknown } }).errorResponse;
  const status = statusOf(err);
  const head = `${err.name}${status !== undefined ? ` (HTTP ${status})` : ''}`;
  if (!response || typeof response.error !== 'string') {
    // msal's errors, rethrown as AuthenticationRequiredError: "invalid_client: Error(s): 7000215 - … - Description: AADSTS…"
    const msal = /^([a-z_]+): .*?Description: (.*?)(?: - Correlation ID:.*)?$/.exec(err.message.split(/\r?\n/, 1)[0]);
    if (msal) return `${head}: ${msal[1]}: ${firstLine(msal[2])}`;
    return err.message ? `${head}: ${firstLine(err.message)}` : head;
  }
  const description = typeof response.errorDescription === 'string' ? `: ${firstLine(response.errorDescription)}` : '';
  return `${head}: ${response.error}${description}`;
}

/**
 * Turn what SecretClient.getSecret threw into an AgentError naming the location, the vault and the provider:
 * 404 → SECRET_NOT_FOUND; 401/403 from the vault, or Entra ID refusing the credential → SECRET_ACCESS_DENIED;
 * anything else → SECRET_PROVIDER_ERROR, with the error as cause only when it cannot quote the secret.
 */
function toAgentError(err: unknown, location: string, vaultUrl: string, timeoutMs: number): AgentError {
  if (err instanceof AgentError) return err;
  const e = asError(err) ?? new Error(String(err));
  const status = statusOf(e);
  if (e.name === 'RestError' && status === 404) {
    return new AgentError(
      ErrorCodes.SECRET_NOT_FOUND,
      `${PROVIDER}: there is no secret at ${location} in ${vaultUrl}. Create it, or fix the connection's ` +
        `credentials_location (or the secret_vault option).`,
    );
  }
  if (e.name === 'RestError' && (status === 401 || status === 403)) {
    return new AgentError(
      ErrorCodes.SECRET_ACCESS_DENIED,
      `${PROVIDER}: access to ${location} in ${vaultUrl} was denied (${describeAzureError(e)}): ${ROLE_HINT}.`,
    );
  }
  if (e.name === 'AuthenticationError' || e.name === 'AuthenticationRequiredError') {
    return new AgentError(
      ErrorCodes.SECRET_ACCESS_DENIED,
      `${PROVIDER}: Entra ID rejected the agent's credentials (${describeAuthenticationError(e)}) reading ${location} ` +
        `in ${vaultUrl}. Check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or the managed identity), then ${ROLE_HINT}.`,
    );
  }
  if (e.name === 'CredentialUnavailableError' || e.name === 'AggregateAuthenticationError') {
    return new AgentError(
      ErrorCodes.SECRET_PROVIDER_ERROR,
      `${PROVIDER}: no Azure credential is available to read ${location} in ${vaultUrl} (${e.name}). Set ` +
        `AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run the agent with a managed identity, then retry.`,
      { cause: e },
    );
  }
  const reason = e.name === 'AbortError' || e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : describeAzureError(e);
  // A RestError carries the request (with its bearer token) and the response, as non-enumerable properties; it is
  // a cause only when its message is safe too.
  return new AgentError(
    ErrorCodes.SECRET_PROVIDER_ERROR,
    `${PROVIDER}: reading ${location} in ${vaultUrl} failed: ${reason}. Check that the vault is reachable and the ` +
      `secret_vault option (and AZURE_KEYVAULT_URL or AZURE_AUTHORITY_HOST if set), then retry.`,
    safeMessage(e) && asError(err) ? { cause: e } : {},
  );
}

/** `err` as an Error, one from another realm included (Node's own errors seen from a vm context). */
function asError(err: unknown): Error | undefined {
  const isError = (Error as { isError?: (value: unknown) => boolean }).isError;
  return err instanceof Error || isError?.(err) ? (err as Error) : undefined;
}

/**
 * AzureKeyVault as a provider: option `secret_vault` (required), the vault's name
 * (`https://<secret_vault>.vault.azure.net`, unless AZURE_KEYVAULT_URL overrides it) or its https URL.
 * Credentials come from `ctx.env.azure` (see {@link makeAzureKeyVaultSource}).
 */
export const azureKeyVaultProvider: CredentialsProvider = {
  name: PROVIDER,
  check(options) {
    const c = makeOptionChecker(options, ['secret_vault'], PROVIDER);
    const vault = c.string('secret_vault', true, 'acme-secrets');
    if (vault !== undefined && !VAULT_NAME.test(vault) && !isHttpsUrl(vault)) {
      c.add(
        'secret_vault',
        'must be the name of a Key Vault (3–24 letters, digits and hyphens, starting with a letter), e.g. ' +
          '"acme-secrets", or its URL, e.g. "https://acme-secrets.vault.azure.net"',
      );
    }
    return c.problems;
  },
  make(options, ctx) {
    return makeAzureKeyVaultSource({
      vaultUrl: keyVaultUrl(options.secret_vault as string, ctx.env.azure.keyVaultUrl),
      azure: ctx.env.azure,
    });
  },
};

function isHttpsUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'https:' && url.hostname !== '' && (url.pathname === '/' || url.pathname === '');
  } catch {
    return false;
  }
}
