/** Report storage built from platform.storage_manager. */
import { resolve } from 'node:path';
import type { StorageManagerConfig } from '../config/types.js';
import { makeConfigError, type ConfigProblem } from '../errors.js';
import { makeLocalStorage } from './local.js';
import { normalizePrefix, PREFIX_RULE } from './paths.js';
import { makeS3Storage, type S3Encryption } from './s3.js';
import type { ReportStorage } from './sink.js';

export type { ReportSink, ReportStorage } from './sink.js';
export { makeLocalSink, makeLocalStorage } from './local.js';
export { makeS3Storage } from './s3.js';

/** What makeReportStorage needs besides the config. */
export interface ReportStorageContext {
  /** The agent's data folder; reports default to `<dataDir>/reports`. */
  dataDir: string;
  /** Folder relative paths resolve against (the config file's folder). */
  baseDir: string;
  /**
   * True when an S3 endpoint is set in the environment (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL): S3 then
   * uses path-style addressing, as S3-compatible servers expect. The caller reads the environment. Default false.
   */
  s3EndpointOverride?: boolean;
}

const OPTIONS = '/platform/storage_manager/options';
const S3_KEYS = ['bucket', 'prefix', 'region', 'forcePathStyle', 'sse', 'kmsKeyId'] as const;
const LOCAL_KEYS = ['directory', 'prefix'] as const;
const SSE_VALUES: readonly S3Encryption[] = ['AES256', 'aws:kms', 'none'];
// The general-purpose bucket naming rule: 3-63 lowercase letters, digits, dots and hyphens.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Collects option problems, each naming its field. */
function makeChecker(options: Readonly<Record<string, unknown>>, allowed: readonly string[], provider: string) {
  const problems: ConfigProblem[] = [];
  const add = (field: string, message: string) => problems.push({ path: `${OPTIONS}/${field}`, message });
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) add(key, `is not an option of ${provider}; remove it (known options: ${allowed.join(', ')})`);
  }
  const optionalString = (field: string): string | undefined => {
    const v = options[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '') {
      add(field, 'must be a non-empty string; set it or remove it');
      return undefined;
    }
    return v;
  };
  const prefix = (): string | undefined => {
    const v = optionalString('prefix');
    if (v !== undefined && normalizePrefix(v) === undefined) add('prefix', `is invalid: ${PREFIX_RULE}`);
    return v;
  };
  return { problems, add, optionalString, prefix };
}

function makeS3FromOptions(options: Readonly<Record<string, unknown>>, ctx: ReportStorageContext): ReportStorage {
  const c = makeChecker(options, S3_KEYS, 'AWSS3');
  const bucket = options.bucket;
  if (bucket === undefined || bucket === '') {
    c.add('bucket', 'is required for AWSS3: set it to the name of the bucket that receives reports');
  } else if (typeof bucket !== 'string') {
    c.add('bucket', 'must be a string: the bucket name, e.g. "acme-dsr-reports"');
  } else if (bucket.startsWith('s3://') || bucket.includes('/')) {
    c.add('bucket', 'must be a bare bucket name, not a URL or path: put key folders in options.prefix');
  } else if (!BUCKET.test(bucket)) {
    c.add('bucket', 'is not a valid bucket name: use 3-63 lowercase letters, digits, "." or "-", starting and ending with a letter or digit');
  }
  const prefix = c.prefix();
  const region = c.optionalString('region');
  const forcePathStyle = options.forcePathStyle;
  if (forcePathStyle !== undefined && typeof forcePathStyle !== 'boolean') {
    c.add('forcePathStyle', 'must be true or false');
  }
  const sse = options.sse;
  if (sse !== undefined && !SSE_VALUES.includes(sse as S3Encryption)) {
    c.add('sse', `must be one of ${SSE_VALUES.map((v) => `"${v}"`).join(', ')} (default "AES256")`);
  }
  const kmsKeyId = c.optionalString('kmsKeyId');
  if (kmsKeyId !== undefined && sse !== 'aws:kms') c.add('kmsKeyId', 'is only used with sse "aws:kms"; set sse to "aws:kms" or remove it');
  if (c.problems.length > 0) throw makeConfigError(c.problems);
  return makeS3Storage({
    bucket: bucket as string,
    ...(prefix !== undefined ? { prefix } : {}),
    ...(region !== undefined ? { region } : {}),
    forcePathStyle: (forcePathStyle as boolean | undefined) ?? ctx.s3EndpointOverride ?? false,
    ...(sse !== undefined ? { sse: sse as S3Encryption } : {}),
    ...(kmsKeyId !== undefined ? { kmsKeyId } : {}),
  });
}

function makeLocalFromOptions(options: Readonly<Record<string, unknown>>, ctx: ReportStorageContext): ReportStorage {
  const c = makeChecker(options, LOCAL_KEYS, 'Local');
  const directory = options.directory;
  if (directory === undefined || directory === '') {
    c.add('directory', 'is required for Local: set it to the folder that receives reports (relative paths resolve against the config folder)');
  } else if (typeof directory !== 'string') {
    c.add('directory', 'must be a string: a folder path');
  }
  const prefix = c.prefix();
  if (c.problems.length > 0) throw makeConfigError(c.problems);
  return makeLocalStorage({
    directory: resolve(ctx.baseDir, directory as string),
    ...(prefix !== undefined ? { prefix } : {}),
  });
}

/**
 * Build storage from platform.storage_manager (StorageManagerConfig in src/config/types.ts); with none
 * configured, Local under `<dataDir>/reports`. Validates options (bucket required for AWSS3, directory for
 * Local; unknown options rejected) with AgentError(CONFIG_INVALID) naming the field. Relative Local
 * directories resolve against baseDir. S3 uses path-style addressing when options.forcePathStyle is true,
 * or when it is unset and ctx.s3EndpointOverride is true.
 */
export function makeReportStorage(cfg: StorageManagerConfig | undefined, ctx: ReportStorageContext): ReportStorage {
  if (cfg === undefined) {
    return makeLocalStorage({ directory: resolve(ctx.baseDir, ctx.dataDir, 'reports') });
  }
  const options = cfg.options ?? {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw makeConfigError([{ path: OPTIONS, message: 'must be an object of provider options' }]);
  }
  switch (cfg.provider) {
    case 'AWSS3':
      return makeS3FromOptions(options, ctx);
    case 'Local':
      return makeLocalFromOptions(options, ctx);
    default:
      throw makeConfigError([
        {
          path: '/platform/storage_manager/provider',
          message: 'is not a supported storage provider: use "AWSS3" or "Local"',
        },
      ]);
  }
}
