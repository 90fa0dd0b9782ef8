/** AWS S3 as a storage provider; the SDK is loaded on first use (src/storage/s3.ts does the work). */
import { makeOptionChecker, type StorageProvider } from './provider.js';
import { checkPrefix, normalizePrefix } from './paths.js';
import { lazyStorage } from './lazy.js';
import type { S3Encryption } from './s3.js';

const S3_KEYS = ['bucket', 'prefix', 'region', 'forcePathStyle', 'sse', 'kmsKeyId'] as const;
const SSE_VALUES: readonly S3Encryption[] = ['AES256', 'aws:kms', 'none'];
/** The general-purpose bucket naming rule: 3-63 lowercase letters, digits, dots and hyphens. */
export const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Check an S3-style `bucket` option (required), adding problems to `add`. */
export function checkBucket(bucket: unknown, provider: string, add: (field: string, message: string) => void): void {
  if (bucket === undefined || bucket === '') {
    add('bucket', `is required for ${provider}: set it to the name of the bucket that receives reports`);
  } else if (typeof bucket !== 'string') {
    add('bucket', 'must be a string: the bucket name, e.g. "acme-dsr-reports"');
  } else if (bucket.startsWith('s3://') || bucket.includes('/')) {
    add('bucket', 'must be a bare bucket name, not a URL or path: put key folders in options.prefix');
  } else if (!S3_BUCKET.test(bucket)) {
    add('bucket', 'is not a valid bucket name: use 3-63 lowercase letters, digits, "." or "-", starting and ending with a letter or digit');
  }
}

/**
 * AWSS3: options `bucket` (required), `prefix`, `region`, `forcePathStyle` (default: true when an S3
 * endpoint override is set in the environment), `sse` ("AES256" default, "aws:kms", "none"), `kmsKeyId`.
 */
export const awsS3Provider: StorageProvider = {
  name: 'AWSS3',
  check(options) {
    const c = makeOptionChecker(options, S3_KEYS, 'AWSS3');
    checkBucket(options.bucket, 'AWSS3', c.add);
    checkPrefix(options.prefix, c.add);
    if (options.region !== undefined && (typeof options.region !== 'string' || options.region.trim() === '')) {
      c.add('region', 'must be a non-empty string; set it or remove it');
    }
    if (options.forcePathStyle !== undefined && typeof options.forcePathStyle !== 'boolean') c.add('forcePathStyle', 'must be true or false');
    if (options.sse !== undefined && !SSE_VALUES.includes(options.sse as S3Encryption)) {
      c.add('sse', `must be one of ${SSE_VALUES.map((v) => `"${v}"`).join(', ')} (default "AES256")`);
    }
    if (options.kmsKeyId !== undefined) {
      if (typeof options.kmsKeyId !== 'string' || options.kmsKeyId.trim() === '') c.add('kmsKeyId', 'must be a non-empty string; set it or remove it');
      else if (options.sse !== 'aws:kms') c.add('kmsKeyId', 'is only used with sse "aws:kms"; set sse to "aws:kms" or remove it');
    }
    return c.problems;
  },
  make(options, ctx) {
    const bucket = options.bucket as string;
    const prefix = options.prefix === undefined ? '' : normalizePrefix(options.prefix as string)!;
    const forcePathStyle = (options.forcePathStyle as boolean | undefined) ?? ctx.env.awsEndpointOverride;
    return lazyStorage(`s3://${bucket}${prefix ? `/${prefix}` : ''}`, async () =>
      (await import('./s3.js')).makeS3Storage({
        bucket,
        ...(options.prefix !== undefined ? { prefix: options.prefix as string } : {}),
        ...(options.region !== undefined ? { region: options.region as string } : {}),
        forcePathStyle,
        ...(options.sse !== undefined ? { sse: options.sse as S3Encryption } : {}),
        ...(options.kmsKeyId !== undefined ? { kmsKeyId: options.kmsKeyId as string } : {}),
      }),
    );
  },
};
