/**
 * `dsr-agent serve` on Azure and Google Cloud as a DataGrail customer configures it: secrets from
 * Azure Key Vault / GCP Secret Manager, reports to Azure Blob (Azurite) / Cloud Storage, and
 * Backblaze B2 through its S3 interface (s3rver). Each cloud is a real protocol peer on 127.0.0.1.
 */
import { describe, it, expect, afterEach } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { startTarget, json, makeSelfSignedCert, type Target } from './helpers/target.js';
import { startService, bearer, submit, waitFinal, type ServiceProcess } from './helpers/service.js';
import { writeServiceConfig, CLIENT_ID, CLIENT_SECRET, USER_UUID } from './helpers/service-config.js';
import { startAzurite } from './helpers/azurite.js';
import { startFakeAzure, TENANT_ID, CLIENT_ID as AZ_CLIENT_ID, CLIENT_SECRET as AZ_CLIENT_SECRET } from './helpers/azure-keyvault-server.js';
import { startFakeGcp } from './helpers/gcp-servers.js';
import { startGcs } from './helpers/gcs-server.js';
import { startS3, S3RVER_CREDENTIALS } from './helpers/s3.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const SECRETS = { svc: { credentials: 'dXNlcjpwYXNz' }, api: { client_id: CLIENT_ID, client_secret: CLIENT_SECRET }, cb: { token: 'cb-token' } };

async function target(): Promise<Target> {
  const t = await startTarget((req, res) => json(res, 200, req.url!.startsWith('/users') ? [{ name: 'Peter' }, { city: 'Flander' }] : {}));
  cleanups.push(() => t.close());
  return t;
}

/** Serve the config, run one access job, and return its report locations. */
async function runJob(configPath: string, env: Record<string, string>, id: string): Promise<string[]> {
  const svc: ServiceProcess = await startService(configPath, env);
  cleanups.push(() => svc.stop('SIGKILL'));
  const auth = await bearer(svc.url, CLIENT_ID, CLIENT_SECRET);
  await submit(svc.url, auth, { type: 'access', identifiers: { email: 'peter@initech.com' }, id });
  const job = await waitFinal(svc.url, auth, id);
  expect({ status: job.status, output: job.status === 'succeeded' ? '' : svc.output() }).toEqual({ status: 'succeeded', output: '' });
  const ready = await fetch(`${svc.url}/readyz`);
  expect(ready.status).toBe(200);
  return job.connections[0].reports;
}

describe('serve on Azure: Key Vault secrets, Blob storage', () => {
  it('reads every secret from the vault and writes reports to the container', async () => {
    const tls = makeSelfSignedCert();
    const azure = await startFakeAzure(tls, SECRETS);
    cleanups.push(() => azure.close());
    const azurite = await startAzurite();
    cleanups.push(() => azurite.close());
    const { BlobServiceClient } = await import('@azure/storage-blob');
    await BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('dsr-reports').create();
    const t = await target();
    const { dir, configPath } = writeServiceConfig(t.url, {
      platform: {
        credentials_manager: { provider: 'AzureKeyVault', options: { secret_vault: 'acme-dsr' } },
        storage_manager: { provider: 'AzureBlob', options: { bucket: 'dsr-reports', project_id: 'acmestorage', prefix: 'eu' } },
      },
    });
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, tls.cert);
    const reports = await runJob(
      configPath,
      {
        DSR_AGENT_DATA_DIR: join(dir, 'data'),
        NODE_EXTRA_CA_CERTS: ca,
        AZURE_TENANT_ID: TENANT_ID,
        AZURE_CLIENT_ID: AZ_CLIENT_ID,
        AZURE_CLIENT_SECRET: AZ_CLIENT_SECRET,
        AZURE_AUTHORITY_HOST: azure.authorityHost,
        AZURE_KEYVAULT_URL: azure.vaultUrl,
        AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString,
      },
      'az-job-1',
    );
    expect(reports).toEqual([1, 2].map((n) => `azure://devstoreaccount1/dsr-reports/eu/az-job-1/${USER_UUID}/report_${n}.csv`));
    const blob = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('dsr-reports').getBlobClient(`eu/az-job-1/${USER_UUID}/report_1.csv`);
    expect((await blob.downloadToBuffer()).toString('utf8')).toBe('name,Peter\n');
    expect(azure.tokensIssued()).toBeGreaterThan(0);
  }, 60_000);
});

describe('serve on Google Cloud: Secret Manager secrets, Cloud Storage', () => {
  it('exchanges the service account for a token, reads the secrets and writes reports to the bucket', async () => {
    const gcp = await startFakeGcp();
    cleanups.push(() => gcp.close());
    for (const [name, value] of Object.entries(SECRETS)) gcp.set('acme-prod', name, value);
    const gcs = await startGcs(['dsr-reports']);
    cleanups.push(() => gcs.close());
    const t = await target();
    const { dir, configPath } = writeServiceConfig(t.url, {
      platform: {
        credentials_manager: { provider: 'GCP', options: { project_id: 'acme-prod' } },
        storage_manager: { provider: 'GCPCloudStore', options: { bucket: 'dsr-reports', project_id: 'acme-prod' } },
      },
    });
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const reports = await runJob(
      configPath,
      {
        DSR_AGENT_DATA_DIR: join(dir, 'data'),
        GOOGLE_APPLICATION_CREDENTIALS_JSON: JSON.stringify(gcp.account.json),
        GCP_SECRET_MANAGER_ENDPOINT: gcp.endpoint,
        STORAGE_EMULATOR_HOST: gcs.endpoint,
      },
      'gcp-job-1',
    );
    expect(reports).toEqual([1, 2].map((n) => `gs://dsr-reports/gcp-job-1/${USER_UUID}/report_${n}.csv`));
    expect(gcs.object('dsr-reports', `gcp-job-1/${USER_UUID}/report_2.csv`)!.bytes.toString('utf8')).toBe('city,Flander\n');
    expect(gcp.issued.size).toBeGreaterThan(0);
  }, 60_000);
});

describe('serve with Backblaze B2 storage', () => {
  it('writes reports through the S3 interface with the BACKBLAZE_* keys', async () => {
    const s3 = await startS3(['dsr-b2-reports']);
    cleanups.push(() => s3.close());
    const t = await target();
    const { dir, configPath } = writeServiceConfig(t.url, {
      platform: {
        credentials_manager: { provider: 'JSONFile', options: { filename: 'secrets.json' } },
        storage_manager: { provider: 'BackblazeB2', options: { bucket: 'dsr-b2-reports', endpoint: s3.endpoint, region: 'us-west-004' } },
      },
    });
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const reports = await runJob(
      configPath,
      {
        DSR_AGENT_DATA_DIR: join(dir, 'data'),
        BACKBLAZE_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
        BACKBLAZE_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      },
      'b2-job-1',
    );
    expect(reports).toEqual([1, 2].map((n) => `s3://dsr-b2-reports/b2-job-1/${USER_UUID}/report_${n}.csv`));
    const body = await (await s3.client().send(new GetObjectCommand({ Bucket: 'dsr-b2-reports', Key: `b2-job-1/${USER_UUID}/report_1.csv` }))).Body!.transformToString();
    expect(body).toBe('name,Peter\n');
  }, 60_000);
});

describe('validate checks every provider option, as serve does', () => {
  it('lists each bad option with its path and exits 2', async () => {
    const { execFileSync } = await import('node:child_process');
    const dir = mkdtempSync(join(tmpdir(), 'dsr-validate-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = JSON.parse(readFileSync(writeServiceConfig('http://127.0.0.1:9').configPath, 'utf8'));
    config.platform = {
      credentials_manager: { provider: 'AzureKeyVault', options: { vault: 'x' } },
      storage_manager: { provider: 'GCPCloudStore', options: { bucket: 'gs://x' } },
    };
    const path = join(dir, 'config.json');
    writeFileSync(path, JSON.stringify(config));
    let out = '';
    let code = 0;
    try {
      execFileSync(process.execPath, [join(process.cwd(), 'dist/cli.js'), '--config', path, 'validate'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (err) {
      code = (err as { status: number }).status;
      out = String((err as { stderr: string }).stderr) + String((err as { stdout: string }).stdout);
    }
    expect(code).toBe(2);
    for (const p of ['/platform/credentials_manager/options/secret_vault', '/platform/credentials_manager/options/vault', '/platform/storage_manager/options/bucket', '/platform/storage_manager/options/project_id']) {
      expect(out).toContain(p);
    }
  });
});
