/** The storage providers (one module each) and building the configured one. */
import { resolve } from 'node:path';
import type { StorageManagerConfig } from '../config/types.js';
import { makeConfigError, type ConfigProblem } from '../errors.js';
import { readEnv, type AgentEnv } from '../env.js';
import { awsS3Provider } from './aws-s3.js';
import { azureBlobProvider } from './azure-blob.js';
import { backblazeB2Provider } from './backblaze-b2.js';
import { gcsProvider } from './gcs.js';
import { localProvider, makeLocalStorage } from './local.js';
import type { StorageProvider } from './provider.js';
import type { ReportStorage } from './sink.js';

export type { ReportSink, ReportStorage } from './sink.js';
export type { StorageProvider, StorageProviderContext } from './provider.js';
export { makeLocalSink, makeLocalStorage } from './local.js';

/** Every storage manager, by its `provider` name; the schema's enum is checked against these names in a test. */
export const STORAGE_PROVIDERS: readonly StorageProvider[] = [awsS3Provider, localProvider, azureBlobProvider, gcsProvider, backblazeB2Provider];

/** What makeReportStorage needs besides the config. */
export interface ReportStorageContext {
  /** The agent's data folder; reports default to `<dataDir>/reports`. */
  dataDir: string;
  /** Folder relative paths resolve against (the config file's folder). */
  baseDir: string;
  /** The environment (cloud credentials, emulator endpoints), read once in src/env.ts. Default: none set. */
  env?: AgentEnv;
  /** Overrides env.awsEndpointOverride: S3 then uses path-style addressing, as S3-compatible servers expect. */
  s3EndpointOverride?: boolean;
}

const AT = '/platform/storage_manager';

/** Every problem with platform.storage_manager's provider and options, with JSON paths ([] when fine). */
export function checkStorageManager(cfg: { provider?: unknown; options?: unknown } | undefined): ConfigProblem[] {
  if (cfg === undefined) return [];
  const provider = STORAGE_PROVIDERS.find((p) => p.name === cfg.provider);
  if (!provider) return []; // the schema names the supported providers
  const options = cfg.options ?? {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) return [];
  return provider.check(options as Record<string, unknown>).map((p) => ({ path: `${AT}/options${p.field ? `/${p.field}` : ''}`, message: p.message }));
}

/**
 * Build storage from platform.storage_manager; with none configured, Local under
 * `<dataDir>/reports`. Options are checked as `validate` checks them: problems throw
 * AgentError(CONFIG_INVALID) listing each with its path.
 */
export function makeReportStorage(cfg: StorageManagerConfig | undefined, ctx: ReportStorageContext): ReportStorage {
  if (cfg === undefined) return makeLocalStorage({ directory: resolve(ctx.baseDir, ctx.dataDir, 'reports') });
  const options = cfg.options ?? {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw makeConfigError([{ path: `${AT}/options`, message: 'must be an object of provider options' }]);
  }
  const provider = STORAGE_PROVIDERS.find((p) => p.name === cfg.provider);
  if (!provider) {
    throw makeConfigError([{ path: `${AT}/provider`, message: `is not a supported storage provider: use one of ${STORAGE_PROVIDERS.map((p) => `"${p.name}"`).join(', ')}` }]);
  }
  const problems = checkStorageManager(cfg);
  if (problems.length) throw makeConfigError(problems);
  const base = ctx.env ?? readEnv({});
  const env = ctx.s3EndpointOverride === undefined ? base : { ...base, awsEndpointOverride: ctx.s3EndpointOverride };
  return provider.make(options, { dataDir: ctx.dataDir, baseDir: ctx.baseDir, env });
}
