/**
 * Reports in an Azure Blob Storage container (provider "AzureBlob").
 *
 * DataGrail's options: `bucket` is the container, `project_id` the storage account, `prefix` an optional
 * key prefix. Blobs are named `<prefix>/<job id>/<connection uuid>/report_<n>.csv` (src/storage/paths.ts)
 * and `put()` resolves to `azure://<account>/<container>/<blob name>`.
 *
 * Encryption: Azure Storage encrypts every blob at rest (AES-256, Microsoft-managed keys, or the
 * customer-managed key / encryption scope configured on the account), and this cannot be turned off,
 * so the provider has no encryption option. Requests go over HTTPS (the account endpoint), except to a
 * local emulator named in a connection string.
 *
 * @azure/storage-blob and @azure/identity are imported on the first `put()` or `check()`, so agents that
 * store reports elsewhere never load them.
 */
import type { ContainerClient } from '@azure/storage-blob';
import type { AgentEnv } from '../env.js';
import { AgentError, ErrorCodes, makeConfigError } from '../errors.js';
import { assertPrefix, checkPrefix } from './paths.js';
import { makeOptionChecker, type OptionProblem, type StorageProvider, type StorageProviderContext } from './provider.js';
import type { ReportStorage } from './sink.js';
import { makeObjectStorage } from './object-store.js';

/** Options of {@link makeAzureBlobStorage}. */
export interface AzureBlobStorageOptions {
  /** The container that receives reports; it must exist (the agent does not create it). */
  container: string;
  /**
   * The storage account: the endpoint is `https://<account>.blob.core.windows.net`. With a connection
   * string the string decides the endpoint, and the account it names (AccountName=, or devstoreaccount1
   * for UseDevelopmentStorage=true) is the one shown in locations; this one only when it names none.
   */
  account: string;
  /** Blob-name prefix, "/"-separated safe segments; leading/trailing "/" ignored. Default: none. */
  prefix?: string;
  /** Azure settings from the environment (src/env.ts): the connection string, else the credential. */
  azure: AgentEnv['azure'];
  /** Cap on one Azure call, retries included, in milliseconds. Default 30_000 (30 s). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30 * 1000; // 30 s
const OPTIONS = '/platform/storage_manager/options';
const KNOWN_OPTIONS = ['bucket', 'project_id', 'prefix'] as const;
/** Container names: 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit. */
const CONTAINER = /^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;
/** Storage account names: 3-24 lowercase letters and digits. */
const ACCOUNT = /^[a-z0-9]{3,24}$/;
/** The account Azurite and the storage emulator serve. */
const DEVELOPMENT_ACCOUNT = 'devstoreaccount1';

/** Every problem with AzureBlob options (required bucket and project_id, naming rules, unknown options). */
function checkOptions(options: Readonly<Record<string, unknown>>): OptionProblem[] {
  const c = makeOptionChecker(options, KNOWN_OPTIONS, 'AzureBlob');
  const container = c.string('bucket', true, 'dsr-reports');
  if (container !== undefined) {
    if (/^(azure|https?):\/\//i.test(container) || container.includes('/')) {
      c.add('bucket', 'must be a bare container name, not a URL or path: put blob folders in options.prefix');
    } else if (!CONTAINER.test(container)) {
      c.add(
        'bucket',
        'is not a valid Azure container name: use 3-63 lowercase letters, digits and hyphens, starting and ending ' +
          'with a letter or digit, with no two hyphens in a row',
      );
    }
  }
  const account = c.string('project_id', true, 'acmedsrreports');
  if (account !== undefined) {
    if (/^https?:\/\//i.test(account) || account.includes('.')) {
      c.add('project_id', 'must be the bare storage account name, not its URL (e.g. "acmedsrreports", not "acmedsrreports.blob.core.windows.net")');
    } else if (!ACCOUNT.test(account)) {
      c.add('project_id', 'is not a valid storage account name: use 3-24 lowercase letters and digits');
    }
  }
  checkPrefix(options.prefix, c.add);
  return c.problems;
}

/** The account a connection string names: AccountName=, devstoreaccount1 for the emulator shortcut, else undefined. */
function connectionStringAccount(connectionString: string): string | undefined {
  let account: string | undefined;
  for (const part of connectionString.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    if (key === 'accountname' && value !== '') account = value;
    if (key === 'usedevelopmentstorage' && value.toLowerCase() === 'true') account ??= DEVELOPMENT_ACCOUNT;
  }
  return account;
}

/** Hide what could be a credential in an SDK message (SAS signatures, account keys, bearer tokens). */
function redact(text: string): string {
  return text
    .replace(/(sig=)[^&\s;"']+/gi, '$1<redacted>')
    .replace(/(AccountKey=)[^;\s"']+/gi, '$1<redacted>')
    .replace(/(SharedAccessSignature=)[^;\s"']+/gi, '$1<redacted>')
    .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, '$1<redacted>');
}

interface AzureErrorShape {
  name?: unknown;
  code?: unknown;
  statusCode?: unknown;
  message?: unknown;
}

/**
 * "ContainerNotFound (HTTP 404): The specified container does not exist." from an SDK error: the first line
 * of its message (storage messages go on with RequestId and Time), cut to 200 characters, redacted.
 */
function azureReason(err: unknown): string {
  // Duck-typed: errors from another realm (node internals under a VM) fail instanceof.
  if (typeof err !== 'object' || err === null) return 'unknown error';
  const e = err as AzureErrorShape;
  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const baseName = typeof e.name === 'string' ? e.name : 'Error';
  const name = (baseName === 'Error' || baseName === 'RestError') && typeof e.code === 'string' ? e.code : baseName;
  const head = status ? `${name} (HTTP ${status})` : name;
  const firstLine = typeof e.message === 'string' ? (e.message.split('\n')[0] ?? '').trim().replace(/\.+$/, '') : '';
  const detail = redact(firstLine).slice(0, 200);
  return detail && detail !== name ? `${head}: ${detail}` : head;
}

/** What to check after a failure, from the error's status, code or type. */
function azureHint(err: unknown, account: string, container: string, usesConnectionString: boolean): string {
  const e = (typeof err === 'object' && err !== null ? err : {}) as AzureErrorShape;
  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const code = typeof e.code === 'string' ? e.code : '';
  const name = typeof e.name === 'string' ? e.name : '';
  const credential = usesConnectionString
    ? 'the account key or SAS in AZURE_STORAGE_CONNECTION_STRING'
    : 'the service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET) or the managed identity';
  if (code === 'ContainerNotFound') {
    return (
      `The container "${container}" does not exist in storage account "${account}": create it (the agent does not ` +
      'create containers), or fix options.bucket and options.project_id.'
    );
  }
  if (status === 401 || status === 403) {
    const may = usesConnectionString
      ? `(a SAS needs the create, write and delete permissions on container "${container}")`
      : `and that it holds a role that may write and delete blobs, such as "Storage Blob Data Contributor", on container "${container}"`;
    return `Azure refused the request: check ${credential} ${may}, and the storage account's firewall rules.`;
  }
  if (/Credential|Authentication/.test(name)) {
    return `No Entra ID token could be obtained: check ${credential} (and AZURE_AUTHORITY_HOST in sovereign clouds).`;
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return `The endpoint's host name does not resolve: check that options.project_id is the storage account name ("${account}").`;
  }
  return (
    `Check that storage account "${account}" and container "${container}" exist, that ${credential} may write and ` +
    'delete blobs there, and that the Blob endpoint is reachable.'
  );
}

/**
 * Azure Blob storage via the real @azure/storage-blob. The client comes from AZURE_STORAGE_CONNECTION_STRING
 * when set (Azurite, local runs), else from `https://<account>.blob.core.windows.net` with a
 * ClientSecretCredential (when tenant, client id and secret are all set) or DefaultAzureCredential (managed
 * identity, workload identity, Azure CLI; AZURE_CLIENT_ID picks a user-assigned identity). The SDK is loaded
 * on first use.
 *
 * Each report is uploaded as one block blob, from the CSV string itself, with content type
 * "text/csv; charset=utf-8"; put() resolves to `azure://<account>/<container>/<blob name>`. Azure encrypts
 * blobs at rest, always (see the module comment). check() uploads and deletes a probe blob
 * `<prefix>/.dsr-agent-probe-<uuid>`. Failures throw AgentError(STORAGE_ERROR) naming account, container
 * and blob and what to check, never the content or a credential. An invalid prefix throws
 * AgentError(CONFIG_INVALID).
 */
export function makeAzureBlobStorage(options: AzureBlobStorageOptions): ReportStorage {
  const { container, azure } = options;
  const prefix = assertPrefix(options.prefix);
  const connectionString = azure.storageConnectionString;
  const account = (connectionString && connectionStringAccount(connectionString)) || options.account;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const base = `azure://${account}/${container}`;

  let client: Promise<ContainerClient> | undefined;
  const containerClient = (): Promise<ContainerClient> => {
    const c = (client ??= load());
    c.catch(() => (client = undefined)); // a failed load is retried on the next call
    return c;
  };
  async function load(): Promise<ContainerClient> {
    const { BlobServiceClient } = await import('@azure/storage-blob');
    if (connectionString) return BlobServiceClient.fromConnectionString(connectionString).getContainerClient(container);
    const { ClientSecretCredential, DefaultAzureCredential } = await import('@azure/identity');
    const { tenantId, clientId, clientSecret, authorityHost } = azure;
    const credential =
      tenantId && clientId && clientSecret
        ? new ClientSecretCredential(tenantId, clientId, clientSecret, authorityHost ? { authorityHost } : {})
        : new DefaultAzureCredential({
            ...(authorityHost ? { authorityHost } : {}),
            ...(tenantId ? { tenantId } : {}),
            ...(clientId ? { managedIdentityClientId: clientId, workloadIdentityClientId: clientId } : {}),
          });
    return new BlobServiceClient(`https://${options.account}.blob.core.windows.net`, credential).getContainerClient(
      container,
    );
  }

  async function send<T>(what: string, key: string, run: (c: ContainerClient, signal: AbortSignal) => Promise<T>): Promise<T> {
    let c: ContainerClient;
    try {
      c = await containerClient();
    } catch (err) {
      const hint = connectionString
        ? 'Check that AZURE_STORAGE_CONNECTION_STRING is a Blob connection string (DefaultEndpointsProtocol, AccountName ' +
          'and AccountKey, or BlobEndpoint and SharedAccessSignature).'
        : 'Check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or the managed identity), and that ' +
          '@azure/storage-blob and @azure/identity are installed.';
      throw new AgentError(
        ErrorCodes.STORAGE_ERROR,
        `Could not set up the Azure Blob client to ${what} ${base}/${key}: ${azureReason(err)}. ${hint}`,
        { cause: err },
      );
    }
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      return await run(c, signal);
    } catch (err) {
      const reason = signal.aborted ? `no answer within ${timeoutMs} ms` : azureReason(err);
      const hint = azureHint(err, account, container, Boolean(connectionString));
      throw new AgentError(ErrorCodes.STORAGE_ERROR, `Could not ${what} ${base}/${key}: ${reason}. ${hint}`, {
        cause: err,
      });
    }
  }

  const upload = (key: string, body: string) =>
    send('write', key, (c, abortSignal) =>
      c.getBlockBlobClient(key).upload(body, Buffer.byteLength(body, 'utf8'), {
        blobHTTPHeaders: { blobContentType: 'text/csv; charset=utf-8' },
        abortSignal,
      }),
    );

  return makeObjectStorage({
    base: base,
    prefix,
    put: (key, body) => upload(key, body).then(() => undefined),
    delete: (key) => send('delete the probe blob', key, (c, abortSignal) => c.getBlockBlobClient(key).delete({ abortSignal })).then(() => undefined),
  });
}

/**
 * The "AzureBlob" storage manager. Options: `bucket` (the container, required), `project_id` (the storage
 * account, required), `prefix` (optional). Credentials come from the environment ({@link AgentEnv.azure}):
 * AZURE_STORAGE_CONNECTION_STRING, else the service principal or DefaultAzureCredential. Locations are
 * `azure://<account>/<container>/<prefix>/<job id>/<connection uuid>/report_<n>.csv`. Blobs are always
 * encrypted at rest by Azure; there is no encryption option.
 */
export const azureBlobProvider: StorageProvider = {
  name: 'AzureBlob',
  check: checkOptions,
  make(options, ctx: StorageProviderContext) {
    const problems = checkOptions(options);
    if (problems.length > 0) {
      throw makeConfigError(problems.map((p) => ({ path: p.field ? `${OPTIONS}/${p.field}` : OPTIONS, message: p.message })));
    }
    return makeAzureBlobStorage({
      container: options.bucket as string,
      account: options.project_id as string,
      ...(options.prefix !== undefined ? { prefix: options.prefix as string } : {}),
      azure: ctx.env.azure,
    });
  },
};
