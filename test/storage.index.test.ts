import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StorageManagerConfig } from '../src/config/types.js';
import { isAgentError, type AgentError } from '../src/errors.js';
import { makeReportStorage } from '../src/storage/index.js';

const UUID = '44d9e703-b8cf-40a8-a138-3cc110319b0d';
let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'storage-index-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** The CONFIG_INVALID error makeReportStorage throws for cfg, or fails the test. */
function configError(cfg: unknown): AgentError {
  let caught: unknown;
  try {
    makeReportStorage(cfg as StorageManagerConfig, { dataDir: base, baseDir: base });
  } catch (err) {
    caught = err;
  }
  expect(isAgentError(caught, 'CONFIG_INVALID')).toBe(true);
  return caught as AgentError;
}
const problemPaths = (err: AgentError) => (err.problems ?? []).map((p) => p.path).sort();
const OPT = '/platform/storage_manager/options';

describe('makeReportStorage', () => {
  it('defaults to Local under <dataDir>/reports, a relative dataDir resolving against baseDir', async () => {
    const storage = makeReportStorage(undefined, { dataDir: 'data', baseDir: base });
    expect(storage.description).toBe(join(base, 'data', 'reports'));
    await storage.check();
    const where = await storage.forJob('job-1').put(UUID, 1, 'a,b\r\n');
    expect(where).toBe(join(base, 'data', 'reports', 'job-1', UUID, 'report_1.csv'));
    expect(await readFile(where, 'utf8')).toBe('a,b\r\n');
  });

  it('resolves a relative Local directory against baseDir and applies the prefix', async () => {
    const storage = makeReportStorage(
      { provider: 'Local', options: { directory: './out', prefix: 'dsr' } },
      { dataDir: '/elsewhere', baseDir: base },
    );
    expect(storage.description).toBe(join(base, 'out', 'dsr'));
    expect(await storage.forJob('j').put(UUID, 2, 'x')).toBe(join(base, 'out', 'dsr', 'j', UUID, 'report_2.csv'));
  });

  it('keeps an absolute Local directory as is', () => {
    const dir = join(base, 'abs');
    const storage = makeReportStorage({ provider: 'Local', options: { directory: dir } }, { dataDir: base, baseDir: '/nowhere' });
    expect(storage.description).toBe(dir);
  });

  it('builds AWSS3 storage from valid options without touching the network', () => {
    const storage = makeReportStorage(
      { provider: 'AWSS3', options: { bucket: 'acme-dsr.reports', prefix: 'agent/', region: 'eu-west-1', sse: 'aws:kms', kmsKeyId: 'alias/x', forcePathStyle: true } },
      { dataDir: base, baseDir: base },
    );
    expect(storage.description).toBe('s3://acme-dsr.reports/agent');
  });

  it('requires a bucket for AWSS3, naming the field', () => {
    const err = configError({ provider: 'AWSS3' });
    expect(problemPaths(err)).toEqual([`${OPT}/bucket`]);
    expect(err.message).toContain('bucket');
    expect(err.message).toContain('required');
  });

  it('requires a directory for Local, naming the field', () => {
    const err = configError({ provider: 'Local', options: { prefix: 'p' } });
    expect(problemPaths(err)).toEqual([`${OPT}/directory`]);
  });

  it.each([
    ['s3://acme/reports', 'URL'],
    ['ab', 'valid bucket name'],
    ['Upper_Case', 'valid bucket name'],
    [42, 'string'],
  ])('rejects the bucket %p', (bucket, words) => {
    const err = configError({ provider: 'AWSS3', options: { bucket } });
    expect(problemPaths(err)).toEqual([`${OPT}/bucket`]);
    expect(err.message).toContain(words);
  });

  it('lists every bad AWSS3 option at once', () => {
    const err = configError({
      provider: 'AWSS3',
      options: { bucket: 'ok-bucket', prefix: '../up', region: '', forcePathStyle: 'yes', sse: 'DES', kmsKeyId: 'k', endpoint: 'http://x' },
    });
    expect(problemPaths(err)).toEqual(
      ['endpoint', 'forcePathStyle', 'kmsKeyId', 'prefix', 'region', 'sse'].map((f) => `${OPT}/${f}`),
    );
    expect(err.message).toContain('AES256');
  });

  it('rejects unknown Local options and bad prefixes', () => {
    const err = configError({ provider: 'Local', options: { directory: 'x', bucket: 'b', prefix: 'a/../b' } });
    expect(problemPaths(err)).toEqual([`${OPT}/bucket`, `${OPT}/prefix`]);
  });

  it('rejects an unknown provider and non-object options', () => {
    expect(problemPaths(configError({ provider: 'GCS', options: {} }))).toEqual(['/platform/storage_manager/provider']);
    expect(problemPaths(configError({ provider: 'Local', options: ['x'] }))).toEqual([OPT]);
  });
});
