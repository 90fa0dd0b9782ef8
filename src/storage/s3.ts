/** Reports in an AWS S3 bucket (or an S3-compatible server). */
import {
  DeleteObjectCommand,
  PutObjectCommand,
  S3Client,
  type PutObjectCommandInput,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3';
import { AgentError, ErrorCodes } from '../errors.js';
import { assertPrefix } from './paths.js';
import type { ReportStorage } from './sink.js';
import { makeObjectStorage } from './object-store.js';

/** Server-side encryption for stored reports; "none" sends no encryption header (the bucket default applies). */
export type S3Encryption = 'AES256' | 'aws:kms' | 'none';

/** Options of {@link makeS3Storage}. */
export interface S3StorageOptions {
  /** The bucket that receives reports (required). */
  bucket: string;
  /** Key prefix, "/"-separated safe segments; leading/trailing "/" ignored. Default: none. */
  prefix?: string;
  /** AWS region. Default: the SDK's chain (AWS_REGION, profile). */
  region?: string;
  /** Path-style addressing (needed by most S3-compatible servers). Default false. */
  forcePathStyle?: boolean;
  /** Server-side encryption. Default "AES256". */
  sse?: S3Encryption;
  /** KMS key id or ARN when sse is "aws:kms". Default: the account's aws/s3 key. */
  kmsKeyId?: string;
  /** Cap on one S3 call, retries included, in milliseconds. Default 30_000 (30 s). */
  timeoutMs?: number;
  /** A ready client (tests, custom credentials); when given, region and forcePathStyle are ignored. */
  client?: S3Client;
  /** What a failure message advises checking (S3-compatible services have their own). Default: AWS's. */
  hint?: string;
}

const DEFAULT_TIMEOUT_MS = 30 * 1000; // 30 s

/**
 * An S3 client configured the standard AWS way (AWS_REGION, AWS_ENDPOINT_URL_S3, profiles, roles).
 * Checksums only when an operation requires them: S3-compatible servers such as s3rver otherwise store
 * the aws-chunked framing inside the object.
 */
export function makeS3Client(options: { region?: string; forcePathStyle?: boolean } = {}): S3Client {
  return new S3Client({
    ...(options.region ? { region: options.region } : {}),
    forcePathStyle: options.forcePathStyle ?? false,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/**
 * "NoSuchBucket (HTTP 404): The specified bucket does not exist" from an SDK error. SDK and S3 messages
 * describe the failure, not the request body; cut to one line of 200 characters.
 */
function s3Reason(err: unknown): string {
  // Duck-typed: errors from another realm (node internals under a VM) fail instanceof.
  if (typeof err !== 'object' || err === null) return 'unknown error';
  const e = err as { name?: unknown; code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const baseName = typeof e.name === 'string' ? e.name : 'Error';
  const name = baseName === 'Error' && typeof e.code === 'string' ? e.code : baseName;
  const head = status ? `${name} (HTTP ${status})` : name;
  const detail = typeof e.message === 'string' ? (e.message.split('\n')[0] ?? '').slice(0, 200) : '';
  return detail && detail !== name ? `${head}: ${detail}` : head;
}

const S3_HINT =
  'Check that the bucket exists, that a region is set (AWS_REGION or options.region), that the agent may ' +
  's3:PutObject and s3:DeleteObject there (and kms:GenerateDataKey for aws:kms), and that the S3 endpoint is reachable.';

/**
 * AWSS3 via the real @aws-sdk/client-s3, configured the standard AWS way (AWS_REGION, AWS_ENDPOINT_URL_S3,
 * profiles, roles); key layout <prefix>/<job id>/<connection uuid>/report_<n>.csv (no leading slash when
 * no prefix). Objects are written with ContentType "text/csv; charset=utf-8" and, by default, SSE AES256.
 * put() resolves to "s3://bucket/key". Failures throw AgentError(STORAGE_ERROR) naming bucket and key,
 * never the content. An invalid prefix throws AgentError(CONFIG_INVALID).
 */
export function makeS3Storage(options: S3StorageOptions): ReportStorage {
  const { bucket } = options;
  if (typeof bucket !== 'string' || bucket === '') {
    throw new AgentError(ErrorCodes.CONFIG_INVALID, 'The S3 bucket is missing: set the bucket that receives reports.');
  }
  const prefix = assertPrefix(options.prefix);
  const client = options.client ?? makeS3Client(options);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const sse = options.sse ?? 'AES256';
  const encryption: Partial<PutObjectCommandInput> =
    sse === 'none'
      ? {}
      : {
          ServerSideEncryption: sse as ServerSideEncryption,
          ...(sse === 'aws:kms' && options.kmsKeyId ? { SSEKMSKeyId: options.kmsKeyId } : {}),
        };

  async function send<T>(what: string, key: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      return await run(signal);
    } catch (err) {
      const reason = signal.aborted ? `no answer within ${timeoutMs} ms` : s3Reason(err);
      throw new AgentError(ErrorCodes.STORAGE_ERROR, `Could not ${what} s3://${bucket}/${key}: ${reason}. ${options.hint ?? S3_HINT}`, {
        cause: err,
      });
    }
  }

  const putObject = (key: string, body: string) =>
    send('write', key, (abortSignal) =>
      client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentType: 'text/csv; charset=utf-8',
          ...encryption,
        }),
        { abortSignal },
      ),
    );

  return makeObjectStorage({
    base: `s3://${bucket}`,
    prefix,
    put: (key, body) => putObject(key, body).then(() => undefined),
    delete: (key) => send('delete the probe object', key, (abortSignal) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal })).then(() => undefined),
  });
}
