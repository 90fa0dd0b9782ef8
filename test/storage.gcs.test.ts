import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { AgentEnv } from '../src/env.js';
import { readEnv } from '../src/env.js';
import { isAgentError } from '../src/errors.js';
import { gcsClientOptions, gcsProvider, makeGcsStorage } from '../src/storage/gcs.js';
import { startGcs, type TestGcs } from './helpers/gcs-server.js';

const UUID = '44d9e703-b8cf-40a8-a138-3cc110319b0d';
const UUID2 = '0b9d1c1e-2f7a-4f59-9d0e-6a1e3c5b7d21';
const CSV = '\uFEFFfirst_name,Zoë\r\ncity,"Zürich, CH"\r\nnote,日本語 ✓ 🎉\r\n';
const KMS = 'projects/acme-prod/locations/europe-west1/keyRings/dsr/cryptoKeys/reports';

let gcs: TestGcs;
let savedEmulatorHost: string | undefined;
beforeAll(async () => {
  // The SDK reads STORAGE_EMULATOR_HOST itself; tests set it only where they mean to.
  savedEmulatorHost = process.env.STORAGE_EMULATOR_HOST;
  delete process.env.STORAGE_EMULATOR_HOST;
  gcs = await startGcs(['dsr-reports', 'dsr-prefixed', 'dsr-probe', 'dsr-denied', 'dsr-kms', 'dsr-env']);
});
afterAll(async () => {
  if (savedEmulatorHost !== undefined) process.env.STORAGE_EMULATOR_HOST = savedEmulatorHost;
  await gcs?.close();
});
afterEach(() => gcs.setFault(undefined));

/** An environment with only the emulator set (AgentEnv as src/env.ts reads it). */
function envFor(extra: Record<string, string> = {}): AgentEnv {
  return readEnv({ STORAGE_EMULATOR_HOST: gcs.endpoint, ...extra });
}
const ctx = () => ({ dataDir: '/unused', baseDir: '/unused', env: envFor() });

async function caught(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isAgentError(err, 'STORAGE_ERROR')).toBe(true);
  return err as Error;
}

describe('gcsProvider.check', () => {
  const fields = (options: Record<string, unknown>) => gcsProvider.check(options).map((p) => p.field).sort();

  it('accepts DataGrail\'s options: bucket, project_id, and the optional prefix and kms_key_name', () => {
    expect(gcsProvider.name).toBe('GCPCloudStore');
    expect(gcsProvider.check({ bucket: 'dsr-reports', project_id: 'acmestorage' })).toEqual([]);
    expect(gcsProvider.check({ bucket: 'acme_dsr.reports.example.com', project_id: 'example.com:acme-prod', prefix: '/agent/eu/', kms_key_name: KMS })).toEqual([]);
    expect(gcsProvider.check({ bucket: 'dsr-reports', project_id: '123456789012' })).toEqual([]);
  });

  it('requires bucket and project_id, naming each', () => {
    const problems = gcsProvider.check({});
    expect(problems.map((p) => p.field).sort()).toEqual(['bucket', 'project_id']);
    expect(problems.find((p) => p.field === 'project_id')?.message).toContain('is required for GCPCloudStore');
    expect(fields({ bucket: '', project_id: '' })).toEqual(['bucket', 'project_id']);
    expect(fields({ bucket: 42, project_id: ['x'] })).toEqual(['bucket', 'project_id']);
  });

  it.each([
    ['gs://dsr-reports', 'bare bucket name'],
    ['dsr-reports/folder', 'bare bucket name'],
    ['DSR-Reports', 'valid Cloud Storage bucket name'],
    ['ab', 'valid Cloud Storage bucket name'],
    ['-dsr', 'valid Cloud Storage bucket name'],
    ['a'.repeat(64), 'valid Cloud Storage bucket name'],
    ['a..b', 'valid Cloud Storage bucket name'],
    ['192.168.5.4', 'IP address'],
    ['goog-reports', '"goog"'],
    ['my-google-reports', '"google"'],
  ])('rejects the bucket %j', (bucket, hint) => {
    const problems = gcsProvider.check({ bucket, project_id: 'acme-prod' });
    expect(problems).toHaveLength(1);
    expect(problems[0].field).toBe('bucket');
    expect(problems[0].message).toContain(hint);
  });

  it('accepts a dotted bucket name longer than 63 characters when no part exceeds 63', () => {
    expect(fields({ bucket: `${'a'.repeat(63)}.${'b'.repeat(63)}`, project_id: 'acme-prod' })).toEqual([]);
  });

  it.each([['Acme-Prod'], ['acme'], ['1acme-prod'], ['acme-prod-'], ['projects/acme-prod']])('rejects the project_id %j', (projectId) => {
    expect(fields({ bucket: 'dsr-reports', project_id: projectId })).toEqual(['project_id']);
  });

  it('rejects unknown options, a bad prefix and a kms_key_name that is not a key name', () => {
    const problems = gcsProvider.check({ bucket: 'dsr-reports', project_id: 'acme-prod', region: 'eu', prefix: '../up', kms_key_name: 'alias/x' });
    expect(problems.map((p) => p.field).sort()).toEqual(['kms_key_name', 'prefix', 'region']);
    expect(problems.find((p) => p.field === 'region')?.message).toContain('known options: bucket, project_id, prefix, kms_key_name');
  });
});

describe('gcsClientOptions', () => {
  const gcp = (env: Record<string, string>) => readEnv(env).gcp;

  it('uses GOOGLE_APPLICATION_CREDENTIALS_JSON parsed, else GOOGLE_APPLICATION_CREDENTIALS as keyFilename, else neither', () => {
    const key = { type: 'service_account', project_id: 'acme-prod', client_email: 'dsr@acme-prod.iam.gserviceaccount.com' };
    const both = gcsClientOptions('acme-prod', gcp({ GOOGLE_APPLICATION_CREDENTIALS_JSON: JSON.stringify(key), GOOGLE_APPLICATION_CREDENTIALS: '/k.json' }));
    expect(both.credentials).toEqual(key);
    expect(both.keyFilename).toBeUndefined();
    expect(both.projectId).toBe('acme-prod');
    expect(both.apiEndpoint).toBeUndefined();
    const file = gcsClientOptions('acme-prod', gcp({ GOOGLE_APPLICATION_CREDENTIALS: '/secrets/key.json' }));
    expect(file.keyFilename).toBe('/secrets/key.json');
    expect(file.credentials).toBeUndefined();
    const adc = gcsClientOptions('acme-prod', gcp({}));
    expect(adc.credentials).toBeUndefined();
    expect(adc.keyFilename).toBeUndefined();
  });

  it('points apiEndpoint at STORAGE_EMULATOR_HOST, adding http:// when no scheme is given', () => {
    expect(gcsClientOptions('p-123456', gcp({ STORAGE_EMULATOR_HOST: 'http://127.0.0.1:4443/' })).apiEndpoint).toBe('http://127.0.0.1:4443');
    expect(gcsClientOptions('p-123456', gcp({ STORAGE_EMULATOR_HOST: 'localhost:4443' })).apiEndpoint).toBe('http://localhost:4443');
    expect(gcsClientOptions('p-123456', gcp({ STORAGE_EMULATOR_HOST: 'https://gcs.internal' })).apiEndpoint).toBe('https://gcs.internal');
  });

  it('refuses credentials JSON that is not an object with STORAGE_ERROR, without echoing it', () => {
    for (const bad of ['{"private_key": "-----BEGIN', '"just a string"', '[1]']) {
      let err: unknown;
      try {
        gcsClientOptions('acme-prod', gcp({ GOOGLE_APPLICATION_CREDENTIALS_JSON: bad }));
      } catch (e) {
        err = e;
      }
      expect(isAgentError(err, 'STORAGE_ERROR')).toBe(true);
      expect((err as Error).message).toContain('GOOGLE_APPLICATION_CREDENTIALS_JSON');
      expect((err as Error).message).not.toContain(bad);
    }
  });
});

describe('gcsProvider.make against the emulator (the real @google-cloud/storage client)', () => {
  it('uploads each report of two jobs to <job id>/<connection uuid>/report_<n>.csv with exactly the CSV bytes', async () => {
    const storage = gcsProvider.make({ bucket: 'dsr-reports', project_id: 'acme-prod' }, ctx());
    expect(storage.description).toBe('gs://dsr-reports');
    const job1 = storage.forJob('job-1');
    const job2 = storage.forJob('job-2');
    expect(await job1.put(UUID, 1, CSV)).toBe(`gs://dsr-reports/job-1/${UUID}/report_1.csv`);
    expect(await job1.put(UUID, 2, 'a,b\r\n')).toBe(`gs://dsr-reports/job-1/${UUID}/report_2.csv`);
    expect(await job2.put(UUID2, 1, '')).toBe(`gs://dsr-reports/job-2/${UUID2}/report_1.csv`);
    expect(gcs.names('dsr-reports')).toEqual([`job-1/${UUID}/report_1.csv`, `job-1/${UUID}/report_2.csv`, `job-2/${UUID2}/report_1.csv`]);
    const first = gcs.object('dsr-reports', `job-1/${UUID}/report_1.csv`)!;
    expect(first.bytes.equals(Buffer.from(CSV, 'utf8'))).toBe(true);
    expect(first.contentType).toBe('text/csv; charset=utf-8');
    expect(first.kmsKeyName).toBeUndefined();
    expect(gcs.object('dsr-reports', `job-1/${UUID}/report_2.csv`)!.bytes.toString('utf8')).toBe('a,b\r\n');
    expect(gcs.object('dsr-reports', `job-2/${UUID2}/report_1.csv`)!.bytes.length).toBe(0);
    // One simple (multipart) upload per report, no resumable session, no credentials sent to an emulator.
    const uploads = gcs.requests.filter((r) => r.path === '/upload/storage/v1/b/dsr-reports/o');
    expect(uploads).toHaveLength(3);
    for (const r of uploads) {
      expect(r.method).toBe('POST');
      expect(r.query.uploadType).toBe('multipart');
      expect(r.headers.authorization).toBeUndefined();
    }
  });

  it('puts objects under the prefix, without leading or doubled slashes', async () => {
    const storage = gcsProvider.make({ bucket: 'dsr-prefixed', project_id: 'acme-prod', prefix: '/reports/eu/' }, ctx());
    expect(storage.description).toBe('gs://dsr-prefixed/reports/eu');
    expect(await storage.forJob('job-3').put(UUID, 1, CSV)).toBe(`gs://dsr-prefixed/reports/eu/job-3/${UUID}/report_1.csv`);
    expect(gcs.names('dsr-prefixed')).toEqual([`reports/eu/job-3/${UUID}/report_1.csv`]);
    expect(gcs.object('dsr-prefixed', `reports/eu/job-3/${UUID}/report_1.csv`)!.bytes.toString('utf8')).toBe(CSV);
  });

  it('check() writes a probe object under the prefix and deletes it', async () => {
    const before = gcs.requests.length;
    await gcsProvider.make({ bucket: 'dsr-probe', project_id: 'acme-prod', prefix: 'probe-area' }, ctx()).check();
    const seen = gcs.requests.slice(before);
    const upload = seen.find((r) => r.method === 'POST');
    const probe = upload?.query.name;
    expect(probe).toMatch(/^probe-area\/\.dsr-agent-probe-[0-9a-f-]{36}$/);
    expect(seen.some((r) => r.method === 'DELETE' && r.path === `/storage/v1/b/dsr-probe/o/${probe}`)).toBe(true);
    expect(gcs.names('dsr-probe')).toEqual([]);
  });

  it('fails check() and put() with STORAGE_ERROR naming bucket and object, never the content, when the bucket is missing', async () => {
    const storage = gcsProvider.make({ bucket: 'dsr-missing', project_id: 'acme-prod' }, ctx());
    const checkErr = await caught(storage.check());
    expect(checkErr.message).toContain('gs://dsr-missing/.dsr-agent-probe-');
    expect(checkErr.message).toContain('HTTP 404 notFound: The specified bucket does not exist');
    expect(checkErr.message).toContain('Check that the bucket exists');
    const putErr = await caught(storage.forJob('job-4').put(UUID, 1, 'subject@example.com,secret'));
    expect(putErr.message).toContain(`gs://dsr-missing/job-4/${UUID}/report_1.csv`);
    expect(putErr.message).not.toContain('subject@example.com');
    expect(putErr.cause).toBeInstanceOf(Error);
  });

  it('fails with STORAGE_ERROR naming the missing permission when GCS answers 403', async () => {
    gcs.deny('dsr-denied');
    const storage = gcsProvider.make({ bucket: 'dsr-denied', project_id: 'acme-prod' }, ctx());
    const err = await caught(storage.forJob('job-5').put(UUID, 1, CSV));
    expect(err.message).toContain(`Could not write gs://dsr-denied/job-5/${UUID}/report_1.csv: HTTP 403 forbidden`);
    expect(err.message).toContain("Permission 'storage.objects.create' denied");
    expect(err.message).toContain('storage.objects.create and storage.objects.delete');
    await caught(storage.check());
  });

  it('sends kms_key_name with each upload', async () => {
    const storage = gcsProvider.make({ bucket: 'dsr-kms', project_id: 'acme-prod', kms_key_name: KMS }, ctx());
    await storage.forJob('job-6').put(UUID, 1, CSV);
    expect(gcs.object('dsr-kms', `job-6/${UUID}/report_1.csv`)!.kmsKeyName).toBe(KMS);
    const err = await caught(gcsProvider.make({ bucket: 'dsr-missing', project_id: 'acme-prod', kms_key_name: KMS }, ctx()).check());
    expect(err.message).toContain('kms_key_name');
  });

  it('works when STORAGE_EMULATOR_HOST is also in the process environment, as in a deployment', async () => {
    // The SDK then sends JSON API calls (the delete) to the bare host, without /storage/v1.
    process.env.STORAGE_EMULATOR_HOST = gcs.endpoint;
    try {
      const storage = gcsProvider.make({ bucket: 'dsr-env', project_id: 'acme-prod' }, ctx());
      const before = gcs.requests.length;
      await storage.check();
      expect(gcs.requests.slice(before).some((r) => r.method === 'DELETE' && r.path.startsWith('/b/dsr-env/o/'))).toBe(true);
      expect(await storage.forJob('job-7').put(UUID, 1, CSV)).toBe(`gs://dsr-env/job-7/${UUID}/report_1.csv`);
      expect(gcs.names('dsr-env')).toEqual([`job-7/${UUID}/report_1.csv`]);
    } finally {
      delete process.env.STORAGE_EMULATOR_HOST;
    }
  });

  it.each([['..'], ['../other-job'], ['a/b'], ['.'], ['']])('rejects the job id and connection uuid %j', async (bad) => {
    const storage = gcsProvider.make({ bucket: 'dsr-reports', project_id: 'acme-prod' }, ctx());
    expect(() => storage.forJob(bad)).toThrow(expect.objectContaining({ code: 'STORAGE_ERROR' }));
    await caught(storage.forJob('job-8').put(bad, 1, CSV));
    expect(gcs.names('dsr-reports').filter((n) => n.startsWith('job-8'))).toEqual([]);
  });

  it('reports bad credentials JSON on first use as STORAGE_ERROR, not when built', async () => {
    const storage = gcsProvider.make(
      { bucket: 'dsr-reports', project_id: 'acme-prod' },
      { ...ctx(), env: envFor({ GOOGLE_APPLICATION_CREDENTIALS_JSON: 'not json' }) },
    );
    const err = await caught(storage.check());
    expect(err.message).toContain('GOOGLE_APPLICATION_CREDENTIALS_JSON is not a JSON object');
  });

  it('is built by makeReportStorage from platform.storage_manager, options checked with their paths', async () => {
    // Imported here so that a problem elsewhere in the registry fails this test only.
    const { makeReportStorage } = await import('../src/storage/index.js');
    const base = { dataDir: '/unused', baseDir: '/unused', env: envFor() };
    const storage = makeReportStorage({ provider: 'GCPCloudStore', options: { bucket: 'dsr-reports', project_id: 'acmestorage', prefix: 'agent' } }, base);
    expect(storage.description).toBe('gs://dsr-reports/agent');
    expect(await storage.forJob('job-9').put(UUID, 1, CSV)).toBe(`gs://dsr-reports/agent/job-9/${UUID}/report_1.csv`);
    expect(gcs.object('dsr-reports', `agent/job-9/${UUID}/report_1.csv`)!.bytes.toString('utf8')).toBe(CSV);
    let err: unknown;
    try {
      makeReportStorage({ provider: 'GCPCloudStore', options: { bucket: 'gs://dsr-reports' } }, base);
    } catch (e) {
      err = e;
    }
    expect(isAgentError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as { problems: { path: string }[] }).problems.map((p) => p.path).sort()).toEqual([
      '/platform/storage_manager/options/bucket',
      '/platform/storage_manager/options/project_id',
    ]);
  });

  it('gives up with STORAGE_ERROR when GCS does not answer within timeoutMs', async () => {
    gcs.setFault(() => ({ hang: true }));
    const storage = makeGcsStorage({ bucket: 'dsr-reports', projectId: 'acme-prod', gcp: envFor().gcp, timeoutMs: 300 });
    const started = Date.now();
    const err = await caught(storage.check());
    expect(err.message).toContain('no answer within 300 ms');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
