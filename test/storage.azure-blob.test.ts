import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  BlobServiceClient,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
  type ContainerClient,
} from '@azure/storage-blob';
import { readEnv, type AgentEnv } from '../src/env.js';
import { isAgentError } from '../src/errors.js';
import { azureBlobProvider, makeAzureBlobStorage } from '../src/storage/azure-blob.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type TestAzurite } from './helpers/azurite.js';

const CONTAINER = 'dsr-reports';
const UUID = '44d9e703-b8cf-40a8-a138-3cc110319b0d';
const UUID2 = '0b7c5a7e-2f7e-4a55-9d0c-7b1c3f1f2a10';
const CSV = '\uFEFFfirst_name,Zoë\r\ncity,"Zürich, CH"\r\nnote,日本語 ✓ 🎉\r\n';

let azurite: TestAzurite;
let service: BlobServiceClient;
beforeAll(async () => {
  azurite = await startAzurite();
  service = BlobServiceClient.fromConnectionString(azurite.connectionString);
  for (const name of [CONTAINER, 'dsr-plain', 'dsr-probe', 'dsr-many', 'dsr-sas']) await service.createContainer(name);
});
afterAll(async () => {
  await azurite?.close();
});

/** The agent's environment with only a connection string set. */
function envWith(storageConnectionString: string | undefined): AgentEnv {
  return readEnv(storageConnectionString ? { AZURE_STORAGE_CONNECTION_STRING: storageConnectionString } : {});
}
const ctx = (connectionString = azurite.connectionString) => ({
  dataDir: '/unused',
  baseDir: '/unused',
  env: envWith(connectionString),
});

const container = (name: string): ContainerClient => service.getContainerClient(name);

async function listNames(name: string): Promise<string[]> {
  const names: string[] = [];
  for await (const blob of container(name).listBlobsFlat()) names.push(blob.name);
  return names.sort();
}

async function getBlob(name: string, key: string) {
  const blob = container(name).getBlobClient(key);
  const [bytes, properties] = await Promise.all([blob.downloadToBuffer(), blob.getProperties()]);
  return { bytes, contentType: properties.contentType };
}

async function caught(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isAgentError(err, 'STORAGE_ERROR')).toBe(true);
  return err as Error;
}

describe('azureBlobProvider.check (options)', () => {
  const ok = { bucket: 'dsr-reports', project_id: 'acmedsr' };
  const fields = (options: Record<string, unknown>) => azureBlobProvider.check(options).map((p) => p.field);

  it('is named AzureBlob and accepts DataGrail options', () => {
    expect(azureBlobProvider.name).toBe('AzureBlob');
    expect(azureBlobProvider.check(ok)).toEqual([]);
    expect(azureBlobProvider.check({ ...ok, prefix: '/dsr/eu/' })).toEqual([]);
    expect(azureBlobProvider.check({ bucket: 'a1b', project_id: 'abc' })).toEqual([]);
    expect(azureBlobProvider.check({ bucket: `a${'-b'.repeat(30)}c`, project_id: 'x'.repeat(24) })).toEqual([]);
  });

  it('requires bucket (the container) and project_id (the account)', () => {
    const problems = azureBlobProvider.check({});
    expect(problems.map((p) => p.field).sort()).toEqual(['bucket', 'project_id']);
    for (const p of problems) expect(p.message).toContain('is required for AzureBlob');
    expect(fields({ bucket: '', project_id: '' }).sort()).toEqual(['bucket', 'project_id']);
    expect(fields({ bucket: 42, project_id: ['acme'] }).sort()).toEqual(['bucket', 'project_id']);
  });

  it.each([
    ['Reports'],
    ['ab'],
    ['a'.repeat(64)],
    ['-reports'],
    ['reports-'],
    ['dsr--reports'],
    ['dsr_reports'],
    ['dsr.reports'],
    ['$web'],
    ['reports/eu'],
    ['azure://acme/reports'],
    ['https://acme.blob.core.windows.net/reports'],
  ])('rejects the container name %j', (bucket) => {
    const problems = azureBlobProvider.check({ ...ok, bucket });
    expect(problems).toHaveLength(1);
    expect(problems[0].field).toBe('bucket');
    expect(problems[0].message).toMatch(/container name|bare container name/);
  });

  it.each([['Acme'], ['ac'], ['a'.repeat(25)], ['acme-dsr'], ['acme.blob.core.windows.net'], ['https://acme']])(
    'rejects the storage account name %j',
    (project_id) => {
      expect(fields({ ...ok, project_id })).toEqual(['project_id']);
    },
  );

  it('rejects unknown options and an unsafe prefix', () => {
    const problems = azureBlobProvider.check({ ...ok, region: 'westeurope', sse: 'AES256', prefix: 'a/../b' });
    expect(problems.map((p) => p.field).sort()).toEqual(['prefix', 'region', 'sse']);
    expect(problems.find((p) => p.field === 'region')?.message).toContain('known options: bucket, project_id, prefix');
    expect(fields({ ...ok, prefix: '' })).toEqual(['prefix']);
    expect(fields({ ...ok, prefix: 7 })).toEqual(['prefix']);
  });

  it('make() refuses invalid options with CONFIG_INVALID naming the field', () => {
    expect(() => azureBlobProvider.make({ bucket: 'Bad_Name' }, ctx())).toThrow(
      expect.objectContaining({
        code: 'CONFIG_INVALID',
        problems: expect.arrayContaining([
          expect.objectContaining({ path: '/platform/storage_manager/options/bucket' }),
          expect.objectContaining({ path: '/platform/storage_manager/options/project_id' }),
        ]),
      }),
    );
  });

  it('make() does no I/O: without a connection string it describes the account endpoint', () => {
    const storage = azureBlobProvider.make(
      { bucket: 'dsr-reports', project_id: 'acmedsr', prefix: 'eu/' },
      { dataDir: '/unused', baseDir: '/unused', env: envWith(undefined) },
    );
    expect(storage.description).toBe('azure://acmedsr/dsr-reports/eu');
  });
});

describe('AzureBlob storage against Azurite', () => {
  it('stores exactly the CSV bytes of two jobs under prefix/job/uuid, as text/csv', async () => {
    const storage = azureBlobProvider.make({ bucket: CONTAINER, project_id: 'acmedsr', prefix: '/reports/eu/' }, ctx());
    // The connection string decides the account.
    expect(storage.description).toBe(`azure://${AZURITE_ACCOUNT}/${CONTAINER}/reports/eu`);
    const job1 = storage.forJob('job-1');
    const job2 = storage.forJob('job-2');
    const base = `azure://${AZURITE_ACCOUNT}/${CONTAINER}`;
    expect(await job1.put(UUID, 1, CSV)).toBe(`${base}/reports/eu/job-1/${UUID}/report_1.csv`);
    expect(await job1.put(UUID, 2, 'a,b\r\n')).toBe(`${base}/reports/eu/job-1/${UUID}/report_2.csv`);
    expect(await job1.put(UUID2, 1, '')).toBe(`${base}/reports/eu/job-1/${UUID2}/report_1.csv`);
    expect(await job2.put(UUID, 1, 'x,y\n1,2\n')).toBe(`${base}/reports/eu/job-2/${UUID}/report_1.csv`);

    expect(await listNames(CONTAINER)).toEqual([
      `reports/eu/job-1/${UUID2}/report_1.csv`,
      `reports/eu/job-1/${UUID}/report_1.csv`,
      `reports/eu/job-1/${UUID}/report_2.csv`,
      `reports/eu/job-2/${UUID}/report_1.csv`,
    ].sort());
    const first = await getBlob(CONTAINER, `reports/eu/job-1/${UUID}/report_1.csv`);
    expect(first.bytes.equals(Buffer.from(CSV, 'utf8'))).toBe(true);
    expect(first.contentType).toBe('text/csv; charset=utf-8');
    expect((await getBlob(CONTAINER, `reports/eu/job-1/${UUID}/report_2.csv`)).bytes.toString('utf8')).toBe('a,b\r\n');
    expect((await getBlob(CONTAINER, `reports/eu/job-1/${UUID2}/report_1.csv`)).bytes.length).toBe(0);
    expect((await getBlob(CONTAINER, `reports/eu/job-2/${UUID}/report_1.csv`)).bytes.toString('utf8')).toBe('x,y\n1,2\n');
  });

  it('overwrites a report written again (a retried job) and writes no leading slash without a prefix', async () => {
    const sink = azureBlobProvider.make({ bucket: 'dsr-plain', project_id: 'acmedsr' }, ctx()).forJob('job-3');
    await sink.put(UUID, 1, 'old\r\n');
    expect(await sink.put(UUID, 1, CSV)).toBe(`azure://${AZURITE_ACCOUNT}/dsr-plain/job-3/${UUID}/report_1.csv`);
    expect(await listNames('dsr-plain')).toEqual([`job-3/${UUID}/report_1.csv`]);
    expect((await getBlob('dsr-plain', `job-3/${UUID}/report_1.csv`)).bytes.toString('utf8')).toBe(CSV);
  });

  it('writes many reports in sequence through one client', async () => {
    const sink = azureBlobProvider.make({ bucket: 'dsr-many', project_id: 'acmedsr', prefix: 'seq' }, ctx()).forJob('job-many');
    const n = 150;
    for (let i = 1; i <= n; i++) await sink.put(UUID, i, `n,value\r\n${i},${'é'.repeat(i)}\r\n`);
    const names = await listNames('dsr-many');
    expect(names).toHaveLength(n);
    expect(new Set(names)).toEqual(new Set(Array.from({ length: n }, (_, i) => `seq/job-many/${UUID}/report_${i + 1}.csv`)));
    for (const i of [1, 77, n]) {
      const got = await getBlob('dsr-many', `seq/job-many/${UUID}/report_${i}.csv`);
      expect(got.bytes.equals(Buffer.from(`n,value\r\n${i},${'é'.repeat(i)}\r\n`, 'utf8'))).toBe(true);
    }
  });

  it('check() writes a probe blob under the prefix and deletes it', async () => {
    const storage = azureBlobProvider.make({ bucket: 'dsr-probe', project_id: 'acmedsr', prefix: 'probe-area' }, ctx());
    await storage.check();
    await storage.check();
    expect(await listNames('dsr-probe')).toEqual([]);

    // With a SAS that may create and write but not delete, the probe stays behind: check() wrote it, and the
    // delete is what fails. The SAS connection string names no account, so project_id does.
    const sas = generateBlobSASQueryParameters(
      { containerName: 'dsr-sas', permissions: ContainerSASPermissions.parse('cw'), expiresOn: new Date(Date.now() + 3600_000) },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).toString();
    const writeOnly = azureBlobProvider.make(
      { bucket: 'dsr-sas', project_id: 'acmedsr', prefix: 'probe-area' },
      ctx(azurite.connectionStringWithSas(sas)),
    );
    expect(writeOnly.description).toBe('azure://acmedsr/dsr-sas/probe-area');
    const err = await caught(writeOnly.check());
    expect(err.message).toMatch(/^Could not delete the probe blob azure:\/\/acmedsr\/dsr-sas\/probe-area\/\.dsr-agent-probe-[0-9a-f-]{36}: /);
    expect(err.message).toContain('(HTTP 403)');
    expect(err.message).toContain('the account key or SAS in AZURE_STORAGE_CONNECTION_STRING');
    expect(err.message).not.toContain(sas.slice(sas.indexOf('sig=') + 4, sas.indexOf('sig=') + 20));
    const left = await listNames('dsr-sas');
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^probe-area\/\.dsr-agent-probe-[0-9a-f-]{36}$/);
    expect((await getBlob('dsr-sas', left[0])).bytes.toString('utf8')).toBe('probe');
  });

  it('fails with STORAGE_ERROR saying the container is missing, never the content', async () => {
    const storage = azureBlobProvider.make({ bucket: 'dsr-missing', project_id: 'acmedsr' }, ctx());
    const checkErr = await caught(storage.check());
    expect(checkErr.message).toContain(`azure://${AZURITE_ACCOUNT}/dsr-missing/.dsr-agent-probe-`);
    expect(checkErr.message).toContain('ContainerNotFound (HTTP 404)');
    expect(checkErr.message).toContain(`The container "dsr-missing" does not exist in storage account "${AZURITE_ACCOUNT}"`);
    const putErr = await caught(storage.forJob('job-4').put(UUID, 1, 'subject@example.com,secret'));
    expect(putErr.message).toContain(`azure://${AZURITE_ACCOUNT}/dsr-missing/job-4/${UUID}/report_1.csv`);
    expect(putErr.message).not.toContain('subject@example.com');
    expect(putErr.message).not.toContain('\n');
    expect(putErr.cause).toBeInstanceOf(Error);
  });

  it('fails with STORAGE_ERROR saying the credential was refused on a wrong account key, without the key', async () => {
    const wrongKey = Buffer.alloc(64, 7).toString('base64');
    const storage = azureBlobProvider.make({ bucket: CONTAINER, project_id: 'acmedsr' }, ctx(azurite.connectionStringWithKey(wrongKey)));
    const err = await caught(storage.check());
    expect(err.message).toContain('(HTTP 403)');
    expect(err.message).toContain('Azure refused the request: check the account key or SAS in AZURE_STORAGE_CONNECTION_STRING');
    expect(err.message).not.toContain(wrongKey);
    expect(err.message).not.toContain(AZURITE_KEY);
    await caught(storage.forJob('job-5').put(UUID, 1, CSV));
    expect((await listNames(CONTAINER)).filter((n) => n.includes('job-5') || n.includes('probe'))).toEqual([]);
  });

  it.each([['..'], ['../other-job'], ['a/b'], ['.'], ['']])('rejects the job id and connection uuid %j', async (bad) => {
    const storage = azureBlobProvider.make({ bucket: CONTAINER, project_id: 'acmedsr' }, ctx());
    expect(() => storage.forJob(bad)).toThrow(expect.objectContaining({ code: 'STORAGE_ERROR' }));
    await caught(storage.forJob('job-6').put(bad, 1, CSV));
    expect((await listNames(CONTAINER)).filter((n) => n.startsWith('job-6') || !n.startsWith('reports/'))).toEqual([]);
  });
});

describe('makeAzureBlobStorage setup and timeouts', () => {
  it('fails with STORAGE_ERROR naming AZURE_STORAGE_CONNECTION_STRING when it is malformed, without its content', async () => {
    const storage = azureBlobProvider.make(
      { bucket: CONTAINER, project_id: 'acmedsr' },
      ctx(`BlobEndpoint=${azurite.blobEndpoint};AccountKey=${AZURITE_KEY}`),
    );
    const err = await caught(storage.check());
    expect(err.message).toContain('Could not set up the Azure Blob client');
    expect(err.message).toContain('Check that AZURE_STORAGE_CONNECTION_STRING is a Blob connection string');
    expect(err.message).not.toContain(AZURITE_KEY);
    // A second call tries again rather than keeping the failure.
    await caught(storage.forJob('job-7').put(UUID, 1, CSV));
  });

  it('gives up with STORAGE_ERROR when the Blob endpoint does not answer within timeoutMs', async () => {
    const silent: Server = createServer(() => {
      // Never answers.
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/${AZURITE_ACCOUNT}`;
    try {
      const storage = makeAzureBlobStorage({
        container: CONTAINER,
        account: 'acmedsr',
        azure: envWith(`DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint}`).azure,
        timeoutMs: 300,
      });
      const started = Date.now();
      const err = await caught(storage.check());
      expect(err.message).toContain('no answer within 300 ms');
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
