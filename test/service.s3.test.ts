import { describe, it, expect, afterAll } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { startTarget, json, type Target } from './helpers/target.js';
import { startS3, S3RVER_CREDENTIALS, type TestS3 } from './helpers/s3.js';
import { startService, bearer, submit, waitFinal, type ServiceProcess } from './helpers/service.js';
import { writeServiceConfig, CLIENT_ID, CLIENT_SECRET, USER_UUID } from './helpers/service-config.js';

let target: Target | undefined;
let s3: TestS3 | undefined;
let svc: ServiceProcess | undefined;
let dir: string | undefined;
afterAll(async () => {
  await svc?.stop('SIGKILL');
  await target?.close();
  await s3?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('dsr-agent serve with AWSS3 storage', () => {
  it('streams each report to s3://bucket/<prefix>/<job id>/<connection uuid>/report_<n>.csv', async () => {
    s3 = await startS3(['dsr-reports']);
    target = await startTarget((req, res) =>
      json(res, 200, req.url!.startsWith('/users') ? [{ name: 'Péter, "the" Gibbons' }, { address: { city: 'Flander' } }] : {}),
    );
    const written = writeServiceConfig(target.url, {
      platform: {
        credentials_manager: { provider: 'JSONFile', options: { filename: 'secrets.json' } },
        storage_manager: { provider: 'AWSS3', options: { bucket: 'dsr-reports', prefix: 'dsr/eu' } },
      },
    });
    dir = written.dir;
    svc = await startService(written.configPath, {
      DSR_AGENT_DATA_DIR: join(dir, 'data'),
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    });
    const auth = await bearer(svc.url, CLIENT_ID, CLIENT_SECRET);
    await submit(svc.url, auth, { type: 'access', identifiers: { email: 'peter@initech.com' }, id: 's3-job-1' });
    const job = await waitFinal(svc.url, auth, 's3-job-1');
    expect(job.status).toBe('succeeded');
    expect(job.connections[0].reports).toEqual([
      `s3://dsr-reports/dsr/eu/s3-job-1/${USER_UUID}/report_1.csv`,
      `s3://dsr-reports/dsr/eu/s3-job-1/${USER_UUID}/report_2.csv`,
    ]);
    const client = s3.client();
    const body = await (await client.send(new GetObjectCommand({ Bucket: 'dsr-reports', Key: `dsr/eu/s3-job-1/${USER_UUID}/report_1.csv` }))).Body!.transformToString();
    expect(body).toBe('name,"Péter, ""the"" Gibbons"\n');
    const ready = await (await fetch(`${svc.url}/readyz`)).json();
    expect(JSON.stringify(ready)).toContain('storage');
  }, 30_000);
});
