import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { isAgentError } from '../src/errors.js';
import { makeReportStorage } from '../src/storage/index.js';
import { makeS3Storage } from '../src/storage/s3.js';
import { S3RVER_CREDENTIALS, startS3, type TestS3 } from './helpers/s3.js';

const BUCKET = 'dsr-reports';
const UUID = '44d9e703-b8cf-40a8-a138-3cc110319b0d';
const CSV = '\uFEFFfirst_name,Zoë\r\ncity,"Zürich, CH"\r\nnote,日本語 ✓ 🎉\r\n';

let s3: TestS3;
let client: S3Client;
beforeAll(async () => {
  s3 = await startS3([BUCKET, 'dsr-prefixed', 'dsr-env']);
  client = s3.client();
});
afterAll(async () => {
  await s3?.close();
});

async function getObject(bucket: string, key: string) {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return { bytes: Buffer.from(await out.Body!.transformToByteArray()), contentType: out.ContentType };
}

async function listKeys(bucket: string): Promise<string[]> {
  const out = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

async function caught(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isAgentError(err, 'STORAGE_ERROR')).toBe(true);
  return err as Error;
}

describe('makeS3Storage', () => {
  it('stores exactly the CSV bytes at <job id>/<connection uuid>/report_<n>.csv when there is no prefix', async () => {
    const storage = makeS3Storage({ bucket: BUCKET, client });
    expect(storage.description).toBe(`s3://${BUCKET}`);
    const sink = storage.forJob('job-1');
    expect(await sink.put(UUID, 1, CSV)).toBe(`s3://${BUCKET}/job-1/${UUID}/report_1.csv`);
    expect(await sink.put(UUID, 2, 'a,b\r\n')).toBe(`s3://${BUCKET}/job-1/${UUID}/report_2.csv`);
    const got = await getObject(BUCKET, `job-1/${UUID}/report_1.csv`);
    expect(got.bytes.equals(Buffer.from(CSV, 'utf8'))).toBe(true);
    expect(got.contentType).toBe('text/csv; charset=utf-8');
    expect(await listKeys(BUCKET)).toEqual([`job-1/${UUID}/report_1.csv`, `job-1/${UUID}/report_2.csv`]);
  });

  it('puts keys under the prefix, without leading or doubled slashes', async () => {
    const storage = makeS3Storage({ bucket: 'dsr-prefixed', prefix: '/reports/eu/', client, sse: 'none' });
    expect(storage.description).toBe('s3://dsr-prefixed/reports/eu');
    const where = await storage.forJob('job-2').put(UUID, 1, CSV);
    expect(where).toBe(`s3://dsr-prefixed/reports/eu/job-2/${UUID}/report_1.csv`);
    expect(await listKeys('dsr-prefixed')).toEqual([`reports/eu/job-2/${UUID}/report_1.csv`]);
    expect((await getObject('dsr-prefixed', `reports/eu/job-2/${UUID}/report_1.csv`)).bytes.toString('utf8')).toBe(CSV);
  });

  it('check() succeeds on an existing bucket and removes its probe object', async () => {
    const storage = makeS3Storage({ bucket: 'dsr-prefixed', prefix: 'probe-area', client });
    await storage.check();
    expect((await listKeys('dsr-prefixed')).filter((k) => k.startsWith('probe-area'))).toEqual([]);
  });

  it('check() and put() fail with STORAGE_ERROR naming bucket and key, never the content, on a missing bucket', async () => {
    const storage = makeS3Storage({ bucket: 'dsr-missing', client });
    const checkErr = await caught(storage.check());
    expect(checkErr.message).toContain('s3://dsr-missing/');
    expect(checkErr.message).toContain('NoSuchBucket (HTTP 404)');
    const putErr = await caught(storage.forJob('job-3').put(UUID, 1, 'subject@example.com,secret'));
    expect(putErr.message).toContain(`s3://dsr-missing/job-3/${UUID}/report_1.csv`);
    expect(putErr.message).not.toContain('subject@example.com');
    expect(putErr.cause).toBeInstanceOf(Error);
  });

  it.each([['..'], ['../other-job'], ['a/b'], ['.'], ['']])('rejects the job id and connection uuid %j', async (bad) => {
    const storage = makeS3Storage({ bucket: BUCKET, client });
    expect(() => storage.forJob(bad)).toThrow(expect.objectContaining({ code: 'STORAGE_ERROR' }));
    await caught(storage.forJob('job-4').put(bad, 1, CSV));
    expect((await listKeys(BUCKET)).filter((k) => k.startsWith('job-4') || !k.startsWith('job-'))).toEqual([]);
  });

  it('gives up with STORAGE_ERROR when S3 does not answer within timeoutMs', async () => {
    const silent: Server = createServer(() => {
      // Never answers.
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const stuck = new S3Client({
      endpoint: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      region: 'us-east-1',
      credentials: S3RVER_CREDENTIALS,
      forcePathStyle: true,
      maxAttempts: 1,
    });
    try {
      const started = Date.now();
      const err = await caught(makeS3Storage({ bucket: BUCKET, client: stuck, timeoutMs: 300 }).check());
      expect(err.message).toContain('no answer within 300 ms');
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      stuck.destroy();
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('makeS3Storage request headers', () => {
  // s3rver ignores encryption headers, so a recording server shows what S3 would receive.
  const seen: { method?: string; url?: string; headers: Record<string, unknown> }[] = [];
  let recorder: Server;
  let recorderClient: S3Client;
  beforeAll(async () => {
    recorder = createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      req.resume();
      req.on('end', () => res.writeHead(req.method === 'DELETE' ? 204 : 200).end());
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    recorderClient = new S3Client({
      endpoint: `http://127.0.0.1:${(recorder.address() as AddressInfo).port}`,
      region: 'us-east-1',
      credentials: S3RVER_CREDENTIALS,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  });
  afterAll(async () => {
    recorderClient?.destroy();
    recorder?.closeAllConnections();
    await new Promise((resolve) => recorder?.close(resolve));
  });

  it.each([
    [{}, 'AES256', undefined],
    [{ sse: 'aws:kms', kmsKeyId: 'alias/dsr' } as const, 'aws:kms', 'alias/dsr'],
    [{ sse: 'none' } as const, undefined, undefined],
  ])('with %j sends SSE %p, KMS key %p, and the CSV content type', async (options, sse, kmsKey) => {
    seen.length = 0;
    await makeS3Storage({ bucket: BUCKET, client: recorderClient, ...options }).forJob('j').put(UUID, 1, CSV);
    expect(seen).toHaveLength(1);
    expect(seen[0].method).toBe('PUT');
    expect(seen[0].url?.split('?')[0]).toBe(`/${BUCKET}/j/${UUID}/report_1.csv`);
    expect(seen[0].headers['x-amz-server-side-encryption']).toBe(sse);
    expect(seen[0].headers['x-amz-server-side-encryption-aws-kms-key-id']).toBe(kmsKey);
    expect(seen[0].headers['content-type']).toBe('text/csv; charset=utf-8');
  });
});

describe('makeReportStorage with AWSS3, configured from the environment', () => {
  const saved: Record<string, string | undefined> = {};
  const env = (): Record<string, string> => ({
    AWS_ENDPOINT_URL_S3: s3.endpoint.replace('127.0.0.1', 'localhost'),
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  });
  beforeAll(() => {
    for (const [k, v] of Object.entries(env())) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    for (const k of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_ENDPOINT_URL']) {
      saved[k] = process.env[k];
      delete process.env[k];
    }
  });
  afterAll(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const ctx = { dataDir: '/unused', baseDir: '/unused' };

  it('writes through the SDK default chain, path-style when an endpoint override is flagged', async () => {
    const storage = makeReportStorage(
      { provider: 'AWSS3', options: { bucket: 'dsr-env', prefix: 'agent' } },
      { ...ctx, s3EndpointOverride: true },
    );
    await storage.check();
    expect(await storage.forJob('job-5').put(UUID, 1, CSV)).toBe(`s3://dsr-env/agent/job-5/${UUID}/report_1.csv`);
    expect((await getObject('dsr-env', `agent/job-5/${UUID}/report_1.csv`)).bytes.toString('utf8')).toBe(CSV);
  });

  it('uses virtual-hosted addressing without the flag, which a local endpoint cannot serve', async () => {
    const storage = makeReportStorage({ provider: 'AWSS3', options: { bucket: 'dsr-env' } }, ctx);
    // The bucket moved into the host name, which does not resolve.
    expect((await caught(storage.check())).message).toContain('dsr-env.localhost');
  });
});
