/**
 * Reports in a Google Cloud Storage bucket (DataGrail's `GCPCloudStore`), through the real
 * @google-cloud/storage client, loaded on first use.
 *
 * Encryption: Cloud Storage encrypts every object at rest, always (Google-managed AES-256 keys, or the
 * bucket's default customer-managed key when one is set on the bucket); there is no header to send and
 * no way to store an unencrypted object. The optional `kms_key_name` option names a Cloud KMS key
 * (CMEK) for each report instead; the project's Cloud Storage service agent then needs
 * roles/cloudkms.cryptoKeyEncrypterDecrypter on that key.
 *
 * Credentials: GOOGLE_APPLICATION_CREDENTIALS_JSON (the service-account key itself, DataGrail's variable)
 * or GOOGLE_APPLICATION_CREDENTIALS (its path), else Application Default Credentials (the metadata server
 * on GCE/GKE/Cloud Run, or gcloud's). With STORAGE_EMULATOR_HOST set (e.g. http://127.0.0.1:4443), requests
 * go to that emulator, unauthenticated, as the SDK does for any custom endpoint.
 */
import type { Bucket, StorageOptions } from '@google-cloud/storage';
import type { AgentEnv } from '../env.js';
import { AgentError, ErrorCodes } from '../errors.js';
import { assertPrefix, checkPrefix } from './paths.js';
import { makeOptionChecker, type StorageProvider } from './provider.js';
import type { ReportStorage } from './sink.js';
import { makeObjectStorage } from './object-store.js';

const NAME = 'GCPCloudStore';
const KEYS = ['bucket', 'project_id', 'prefix', 'kms_key_name'] as const;
const DEFAULT_TIMEOUT_MS = 30 * 1000; // 30 s, as for S3

/** Options of {@link makeGcsStorage}. */
export interface GcsStorageOptions {
  /** The bucket that receives reports. */
  bucket: string;
  /** The Google Cloud project (ID or number) the client works in. */
  projectId: string;
  /** Object name prefix, "/"-separated safe segments; leading/trailing "/" ignored. Default: none. */
  prefix?: string;
  /** A Cloud KMS key (projects/…/locations/…/keyRings/…/cryptoKeys/…) each report is encrypted with. Default: the bucket's. */
  kmsKeyName?: string;
  /** Credentials and emulator settings (AgentEnv.gcp). */
  gcp: AgentEnv['gcp'];
  /** Cap on one upload or delete, retries included, in milliseconds. Default 30_000 (30 s). */
  timeoutMs?: number;
}

/** The GCS naming rules, as one message per problem; undefined when `bucket` is a valid name. */
function bucketProblem(bucket: string): string | undefined {
  if (bucket.startsWith('gs://') || bucket.includes('/')) {
    return 'must be a bare bucket name, not a gs:// URL or path: put folders in options.prefix';
  }
  const rule =
    'is not a valid Cloud Storage bucket name: use 3-63 lowercase letters, digits, "-", "_" or "." ' +
    '(up to 222 with dots, at most 63 between dots), starting and ending with a letter or digit';
  if (!/^[a-z0-9][a-z0-9._-]*[a-z0-9]$/.test(bucket) || bucket.length < 3) return rule;
  const components = bucket.split('.');
  if (bucket.length > (components.length > 1 ? 222 : 63) || components.some((c) => c.length === 0 || c.length > 63)) return rule;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(bucket)) return 'is not a valid Cloud Storage bucket name: it must not look like an IP address';
  if (bucket.startsWith('goog') || bucket.includes('google')) {
    return 'is not a valid Cloud Storage bucket name: it must not start with "goog" or contain "google"';
  }
  return undefined;
}

// A project ID (6-30 characters, optionally domain-scoped as "example.com:my-project") or a project number.
const PROJECT_ID = /^(?:[a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const PROJECT_NUMBER = /^[1-9]\d{0,19}$/;
const KMS_KEY = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/;

/**
 * The @google-cloud/storage client options for `projectId` and the environment: `credentials` parsed
 * from GOOGLE_APPLICATION_CREDENTIALS_JSON, else `keyFilename` from GOOGLE_APPLICATION_CREDENTIALS, else
 * neither (Application Default Credentials); `apiEndpoint` from STORAGE_EMULATOR_HOST, with "http://"
 * added when it names no scheme (emulators speak plain HTTP; the SDK would assume https). Throws
 * AgentError(STORAGE_ERROR) when the JSON is not an object, without echoing it.
 */
export function gcsClientOptions(projectId: string, gcp: AgentEnv['gcp'], timeoutMs = DEFAULT_TIMEOUT_MS): StorageOptions {
  const options: StorageOptions = {
    projectId,
    timeout: timeoutMs,
    retryOptions: { totalTimeout: Math.max(1, Math.ceil(timeoutMs / 1000)) },
  };
  if (gcp.credentialsJson !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(gcp.credentialsJson);
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new AgentError(
        ErrorCodes.STORAGE_ERROR,
        'GOOGLE_APPLICATION_CREDENTIALS_JSON is not a JSON object: set it to the content of a service-account key file, ' +
          'or unset it to use GOOGLE_APPLICATION_CREDENTIALS or the metadata server.',
      );
    }
    options.credentials = parsed as StorageOptions['credentials'];
  } else if (gcp.credentialsFile !== undefined) {
    options.keyFilename = gcp.credentialsFile;
  }
  if (gcp.storageEmulatorHost !== undefined) {
    const host = gcp.storageEmulatorHost.trim();
    options.apiEndpoint = (/^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? host : `http://${host}`).replace(/\/+$/, '');
  }
  return options;
}

/**
 * "HTTP 403 forbidden: … does not have storage.objects.create access …" from an SDK error (an ApiError
 * carries the HTTP status as a number `code` and the JSON API's reasons), or "FetchError ECONNREFUSED: …".
 * GCS messages describe the failure, never the object's content; cut to one line of 200 characters.
 */
function gcsReason(err: unknown): string {
  // Duck-typed: errors from another realm (node internals under a VM) fail instanceof.
  if (typeof err !== 'object' || err === null) return 'unknown error';
  const e = err as { name?: unknown; code?: unknown; message?: unknown; errors?: { reason?: unknown }[] };
  const reason = Array.isArray(e.errors) && typeof e.errors[0]?.reason === 'string' ? ` ${e.errors[0].reason}` : '';
  const head =
    typeof e.code === 'number'
      ? `HTTP ${e.code}${reason}`
      : [typeof e.name === 'string' ? e.name : 'Error', typeof e.code === 'string' ? e.code : ''].filter(Boolean).join(' ');
  const detail = typeof e.message === 'string' ? (e.message.split('\n')[0] ?? '').slice(0, 200).replace(/[.\s]+$/, '') : '';
  return detail ? `${head}: ${detail}` : head;
}

function hint(kmsKeyName: string | undefined): string {
  return (
    'Check that the bucket exists, that the service account (GOOGLE_APPLICATION_CREDENTIALS_JSON, GOOGLE_APPLICATION_CREDENTIALS ' +
    'or the metadata server) has storage.objects.create and storage.objects.delete on it (e.g. roles/storage.objectAdmin)' +
    (kmsKeyName ? ', that the Cloud Storage service agent may use the kms_key_name key (roles/cloudkms.cryptoKeyEncrypterDecrypter)' : '') +
    ', and that storage.googleapis.com (or STORAGE_EMULATOR_HOST) is reachable.'
  );
}

/**
 * GCPCloudStore storage: each report is uploaded as it is written, in one request (a multipart upload,
 * `resumable: false`) with content type "text/csv; charset=utf-8", to
 * `<prefix>/<job id>/<connection uuid>/report_<n>.csv` (no leading slash without a prefix). put()
 * resolves to "gs://bucket/name". The SDK checks the CRC32C GCS reports against what it sent. The SDK
 * is imported on the first put() or check(). Failures throw AgentError(STORAGE_ERROR) naming bucket and
 * object, never the content; an invalid prefix throws AgentError(CONFIG_INVALID).
 */
export function makeGcsStorage(options: GcsStorageOptions): ReportStorage {
  const { bucket, projectId, kmsKeyName, gcp } = options;
  const prefix = assertPrefix(options.prefix);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  let loading: Promise<Bucket> | undefined;
  const bucketHandle = (): Promise<Bucket> => {
    const p = (loading ??= (async () => {
      const clientOptions = gcsClientOptions(projectId, gcp, timeoutMs);
      const { Storage } = await import('@google-cloud/storage');
      return new Storage(clientOptions).bucket(bucket);
    })());
    p.catch(() => (loading = undefined)); // a failed load is retried on the next call
    return p;
  };

  async function send(what: string, key: string, run: (b: Bucket) => Promise<unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new Error('timeout'));
      }, timeoutMs);
      timer.unref();
    });
    try {
      await Promise.race([bucketHandle().then(run), deadline]);
    } catch (err) {
      if (err instanceof AgentError) throw err;
      const reason = timedOut ? `no answer within ${timeoutMs} ms` : gcsReason(err);
      throw new AgentError(ErrorCodes.STORAGE_ERROR, `Could not ${what} gs://${bucket}/${key}: ${reason}. ${hint(kmsKeyName)}`, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  const putObject = (key: string, body: string) =>
    send('write', key, (b) =>
      b.file(key, kmsKeyName ? { kmsKeyName } : {}).save(body, {
        resumable: false,
        contentType: 'text/csv; charset=utf-8',
        validation: 'crc32c',
      }),
    );

  return makeObjectStorage({
    base: `gs://${bucket}`,
    prefix,
    put: (key, body) => putObject(key, body).then(() => undefined),
    delete: (key) => send('delete the probe object', key, (b) => b.file(key).delete()).then(() => undefined),
  });
}

/**
 * GCPCloudStore: options `bucket` (required), `project_id` (required), `prefix`, `kms_key_name` (a
 * CMEK for each report; without it the bucket's default encryption applies, which is always on).
 */
export const gcsProvider: StorageProvider = {
  name: NAME,
  check(options) {
    const c = makeOptionChecker(options, KEYS, NAME);
    const bucket = c.string('bucket', true, 'acme-dsr-reports');
    if (bucket !== undefined) {
      const problem = bucketProblem(bucket);
      if (problem) c.add('bucket', problem);
    }
    const projectId = c.string('project_id', true, 'acme-prod');
    if (projectId !== undefined && !PROJECT_ID.test(projectId) && !PROJECT_NUMBER.test(projectId)) {
      c.add(
        'project_id',
        'is not a Google Cloud project ID: use 6-30 lowercase letters, digits or "-", starting with a letter and not ending with "-" ' +
          '(e.g. "acme-prod"), or the project number',
      );
    }
    checkPrefix(options.prefix, c.add);
    const kms = options.kms_key_name;
    if (kms !== undefined) {
      if (typeof kms !== 'string' || !KMS_KEY.test(kms)) {
        c.add(
          'kms_key_name',
          'must be a Cloud KMS key name, "projects/<project>/locations/<location>/keyRings/<ring>/cryptoKeys/<key>"; ' +
            'remove it to use the bucket\'s default encryption',
        );
      }
    }
    return c.problems;
  },
  make(options, ctx) {
    return makeGcsStorage({
      bucket: options.bucket as string,
      projectId: options.project_id as string,
      ...(options.prefix !== undefined ? { prefix: options.prefix as string } : {}),
      ...(options.kms_key_name !== undefined ? { kmsKeyName: options.kms_key_name as string } : {}),
      gcp: ctx.env.gcp,
    });
  },
};
