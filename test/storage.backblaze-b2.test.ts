import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { readEnv } from '../src/env.js';
import { isAgentError } from '../src/errors.js';
import { backblazeB2Provider } from '../src/storage/backblaze-b2.js';
import { S3RVER_CREDENTIALS, startS3, type TestS3 } from './helpers/s3.js';

const UUID = '44d9e703-b8cf-40a8-a138-3cc110319b0d';
const UUID2 = '0b9d1c1e-2f7a-4f59-9d0e-6a1e3c5b7d21';
const CSV = '\uFEFFfirst_name,Zoë\r\ncity,"Zürich, CH"\r\nnote,日本語 ✓ 🎉\r\n';
/** An access key id s3rver does not know: a request signed with it is refused (InvalidAccessKeyId). */
const AWS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
const B2_ENV = { BACKBLAZE_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, BACKBLAZE_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey };

/** What the recording proxy saw of one request. */
interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The access key id of the SigV4 Authorization header (Credential=<id>/...). */
  keyId?: string;
}

let s3: TestS3;
let direct: S3Client;
let proxy: Server;
let endpoint: string;
const seen: Seen[] = [];
const saved: Record<string, string | undefined> = {};

/** Set (or, with undefined, delete) process.env keys, remembering the first value of each for afterAll. */
function setEnv(values: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(values)) {
    if (!(k in saved)) saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

beforeAll(async () => {
  s3 = await startS3(['dsr-b2-reports', 'dsr-b2-prefixed', 'dsr-b2-probe', 'dsr-b2-keys']);
  direct = s3.client();
  // A pass-through proxy in front of s3rver that records what the SDK sends (B2 would see the same).
  const upstream = new URL(s3.endpoint);
  proxy = createServer((req, res) => {
    const auth = String(req.headers.authorization ?? '');
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, keyId: /Credential=([^/]+)\//.exec(auth)?.[1] });
    const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  // The AWS_* keys of the default chain are ones s3rver refuses, unless a test says otherwise.
  setEnv({
    AWS_ACCESS_KEY_ID: AWS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_ENDPOINT_URL: undefined,
    AWS_ENDPOINT_URL_S3: undefined,
    AWS_REGION: undefined,
  });
});
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  proxy?.closeAllConnections();
  await new Promise((resolve) => proxy?.close(resolve));
  await s3?.close();
});
beforeEach(() => {
  seen.length = 0;
});

const ctx = (env: Record<string, string> = B2_ENV) => ({ dataDir: '/unused', baseDir: '/unused', env: readEnv(env) });
const b2 = (extra: Record<string, unknown> = {}) => ({ bucket: 'dsr-b2-reports', endpoint, region: 'us-west-004', ...extra });

async function getObject(bucket: string, key: string) {
  const out = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return { bytes: Buffer.from(await out.Body!.transformToByteArray()), contentType: out.ContentType };
}
async function listKeys(bucket: string): Promise<string[]> {
  const out = await direct.send(new ListObjectsV2Command({ Bucket: bucket }));
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

describe('backblazeB2Provider.check', () => {
  const fields = (options: Record<string, unknown>) => backblazeB2Provider.check(options).map((p) => p.field).sort();
  const valid = { bucket: 'dsr-reports', endpoint: 'https://s3.us-west-004.backblazeb2.com', region: 'us-west-004' };

  it("accepts DataGrail's options: bucket, endpoint, region and the optional prefix", () => {
    expect(backblazeB2Provider.name).toBe('BackblazeB2');
    expect(backblazeB2Provider.check(valid)).toEqual([]);
    expect(backblazeB2Provider.check({ ...valid, bucket: 'Acme-DSR-Reports', prefix: '/agent/eu/' })).toEqual([]);
    expect(backblazeB2Provider.check({ ...valid, endpoint: 'http://127.0.0.1:9000', region: 'us-east-1' })).toEqual([]);
  });

  it('requires bucket, endpoint and region, naming each', () => {
    const problems = backblazeB2Provider.check({});
    expect(problems.map((p) => p.field).sort()).toEqual(['bucket', 'endpoint', 'region']);
    for (const p of problems) expect(p.message).toContain('is required for BackblazeB2');
    expect(fields({ bucket: '', endpoint: 7, region: '  ' })).toEqual(['bucket', 'endpoint', 'region']);
  });

  it.each([
    ['s3.us-west-004.backblazeb2.com', "bucket's S3 endpoint URL"],
    ['ftp://s3.us-west-004.backblazeb2.com', 'https:// URL'],
    ['s3://dsr-reports', 'https:// URL'],
    ['https://keyid:secret@s3.us-west-004.backblazeb2.com', 'must not carry credentials'],
    ['https://s3.us-west-004.backblazeb2.com/?x=1', 'query or fragment'],
  ])('rejects the endpoint %j', (bad, hint) => {
    const problems = backblazeB2Provider.check({ ...valid, endpoint: bad });
    expect(problems).toHaveLength(1);
    expect(problems[0].field).toBe('endpoint');
    expect(problems[0].message).toContain(hint);
    expect(problems[0].message).not.toContain('secret');
  });

  it("rejects a region that is not the B2 endpoint's", () => {
    const problems = backblazeB2Provider.check({ ...valid, region: 'eu-central-003' });
    expect(problems).toEqual([{ field: 'region', message: expect.stringContaining('set region to "us-west-004"') }]);
    expect(fields({ ...valid, region: 'US West' })).toEqual(['region']);
  });

  it.each([['b2://dsr-reports'], ['dsr-reports/folder'], ['short'], ['b2-reports'], ['dsr_reports'], ['a'.repeat(64)]])('rejects the bucket %j', (bucket) => {
    expect(fields({ ...valid, bucket })).toEqual(['bucket']);
  });

  it('rejects unknown options (no sse: SSE-B2 is always requested) and a bad prefix', () => {
    const problems = backblazeB2Provider.check({ ...valid, sse: 'aws:kms', prefix: '../up' });
    expect(problems.map((p) => p.field).sort()).toEqual(['prefix', 'sse']);
    expect(problems.find((p) => p.field === 'sse')?.message).toContain('known options: bucket, endpoint, region, prefix');
  });
});

describe('backblazeB2Provider.make against s3rver', () => {
  it('writes reports of two jobs to <job id>/<connection uuid>/report_<n>.csv with exactly the CSV bytes', async () => {
    const storage = backblazeB2Provider.make(b2(), ctx());
    expect(storage.description).toBe(`s3://dsr-b2-reports (Backblaze B2 at ${endpoint})`);
    expect(await storage.forJob('job-1').put(UUID, 1, CSV)).toBe(`s3://dsr-b2-reports/job-1/${UUID}/report_1.csv`);
    expect(await storage.forJob('job-1').put(UUID, 2, 'a,b\r\n')).toBe(`s3://dsr-b2-reports/job-1/${UUID}/report_2.csv`);
    expect(await storage.forJob('job-2').put(UUID2, 1, CSV)).toBe(`s3://dsr-b2-reports/job-2/${UUID2}/report_1.csv`);
    expect(await listKeys('dsr-b2-reports')).toEqual([`job-1/${UUID}/report_1.csv`, `job-1/${UUID}/report_2.csv`, `job-2/${UUID2}/report_1.csv`]);
    const first = await getObject('dsr-b2-reports', `job-1/${UUID}/report_1.csv`);
    expect(first.bytes.equals(Buffer.from(CSV, 'utf8'))).toBe(true);
    expect(first.contentType).toBe('text/csv; charset=utf-8');
    expect((await getObject('dsr-b2-reports', `job-1/${UUID}/report_2.csv`)).bytes.toString('utf8')).toBe('a,b\r\n');
    expect((await getObject('dsr-b2-reports', `job-2/${UUID2}/report_1.csv`)).bytes.toString('utf8')).toBe(CSV);
  });

  it('sends B2-compatible requests: path-style, SSE AES256, no checksum headers, signed for the region', async () => {
    await backblazeB2Provider.make(b2(), ctx()).forJob('job-3').put(UUID, 1, CSV);
    expect(seen).toHaveLength(1);
    const put = seen[0];
    expect(put.method).toBe('PUT');
    expect(put.url.split('?')[0]).toBe(`/dsr-b2-reports/job-3/${UUID}/report_1.csv`);
    expect(put.headers['x-amz-server-side-encryption']).toBe('AES256');
    expect(Object.keys(put.headers).filter((h) => h.startsWith('x-amz-checksum') || h === 'x-amz-sdk-checksum-algorithm')).toEqual([]);
    expect(put.headers['x-amz-content-sha256']).not.toBe('STREAMING-UNSIGNED-PAYLOAD-TRAILER');
    expect(String(put.headers.authorization)).toContain('/us-west-004/s3/aws4_request');
  });

  it('puts keys under the prefix', async () => {
    const storage = backblazeB2Provider.make(b2({ bucket: 'dsr-b2-prefixed', prefix: '/reports/eu/' }), ctx());
    expect(storage.description).toBe(`s3://dsr-b2-prefixed/reports/eu (Backblaze B2 at ${endpoint})`);
    expect(await storage.forJob('job-4').put(UUID, 1, CSV)).toBe(`s3://dsr-b2-prefixed/reports/eu/job-4/${UUID}/report_1.csv`);
    expect(await listKeys('dsr-b2-prefixed')).toEqual([`reports/eu/job-4/${UUID}/report_1.csv`]);
  });

  it('check() writes a probe object and deletes it', async () => {
    await backblazeB2Provider.make(b2({ bucket: 'dsr-b2-probe', prefix: 'probe-area' }), ctx()).check();
    expect(seen.map((s) => s.method)).toEqual(['PUT', 'DELETE']);
    expect(seen[0].url.split('?')[0]).toMatch(/^\/dsr-b2-probe\/probe-area\/\.dsr-agent-probe-[0-9a-f-]{36}$/);
    expect(seen[1].url.split('?')[0]).toBe(seen[0].url.split('?')[0]);
    expect(await listKeys('dsr-b2-probe')).toEqual([]);
  });

  it('fails with STORAGE_ERROR giving B2 advice, naming bucket and key but not the content, when the bucket is missing', async () => {
    const storage = backblazeB2Provider.make(b2({ bucket: 'dsr-b2-missing' }), ctx());
    const checkErr = await caught(storage.check());
    expect(checkErr.message).toContain('s3://dsr-b2-missing/');
    expect(checkErr.message).toContain('NoSuchBucket (HTTP 404)');
    expect(checkErr.message).toContain('writeFiles and deleteFiles');
    expect(checkErr.message).not.toContain('AWS_REGION');
    const putErr = await caught(storage.forJob('job-5').put(UUID, 1, 'subject@example.com,secret'));
    expect(putErr.message).toContain(`Could not write s3://dsr-b2-missing/job-5/${UUID}/report_1.csv: NoSuchBucket`);
    expect(putErr.message).not.toContain('subject@example.com');
    expect(putErr.cause).toBeInstanceOf(Error);
  });

  it('is built by makeReportStorage from platform.storage_manager, options checked with their paths', async () => {
    // Imported here so that a problem elsewhere in the registry fails this test only.
    const { makeReportStorage } = await import('../src/storage/index.js');
    const base = ctx();
    const storage = makeReportStorage({ provider: 'BackblazeB2', options: b2({ prefix: 'agent' }) }, base);
    expect(await storage.forJob('job-8').put(UUID, 1, CSV)).toBe(`s3://dsr-b2-reports/agent/job-8/${UUID}/report_1.csv`);
    expect((await getObject('dsr-b2-reports', `agent/job-8/${UUID}/report_1.csv`)).bytes.toString('utf8')).toBe(CSV);
    let err: unknown;
    try {
      makeReportStorage({ provider: 'BackblazeB2', options: { bucket: 'dsr-b2-reports', endpoint: 'ftp://x' } }, base);
    } catch (e) {
      err = e;
    }
    expect(isAgentError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as { problems: { path: string }[] }).problems.map((p) => p.path).sort()).toEqual([
      '/platform/storage_manager/options/endpoint',
      '/platform/storage_manager/options/region',
    ]);
  });

  it.each([['..'], ['a/b'], ['']])('rejects the job id and connection uuid %j', async (bad) => {
    const storage = backblazeB2Provider.make(b2(), ctx());
    expect(() => storage.forJob(bad)).toThrow(expect.objectContaining({ code: 'STORAGE_ERROR' }));
    await caught(storage.forJob('job-6').put(bad, 1, CSV));
    expect(seen).toEqual([]);
  });
});

describe('backblazeB2Provider keys', () => {
  it('signs with BACKBLAZE_ACCESS_KEY_ID/SECRET when set, not the AWS_* keys', async () => {
    expect(process.env.AWS_ACCESS_KEY_ID).toBe(AWS_KEY_ID);
    const storage = backblazeB2Provider.make(b2({ bucket: 'dsr-b2-keys' }), ctx());
    await storage.check();
    await storage.forJob('job-7').put(UUID, 1, CSV);
    expect(seen.length).toBe(3);
    expect(new Set(seen.map((s) => s.keyId))).toEqual(new Set([S3RVER_CREDENTIALS.accessKeyId]));
  });

  it('falls back to the AWS SDK default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) without BACKBLAZE_* keys', async () => {
    // The chain's keys reach B2: here ones s3rver does not know, so it refuses them.
    const refused = await caught(backblazeB2Provider.make(b2({ bucket: 'dsr-b2-keys' }), ctx({})).check());
    expect(refused.message).toContain('InvalidAccessKeyId');
    expect(seen.map((s) => s.keyId)).toEqual([AWS_KEY_ID]);
    seen.length = 0;
    setEnv({ AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey });
    try {
      await backblazeB2Provider.make(b2({ bucket: 'dsr-b2-keys' }), ctx({})).check();
      expect(seen.map((s) => s.keyId)).toEqual([S3RVER_CREDENTIALS.accessKeyId, S3RVER_CREDENTIALS.accessKeyId]);
    } finally {
      setEnv({ AWS_ACCESS_KEY_ID: AWS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' });
    }
  });

  it('refuses, on first use, only one of the two BACKBLAZE_* keys', async () => {
    const storage = backblazeB2Provider.make(b2(), ctx({ BACKBLAZE_ACCESS_KEY_ID: 'S3RVER' }));
    const err = await caught(storage.check());
    expect(err.message).toContain('Only BACKBLAZE_ACCESS_KEY_ID is set');
    expect(seen).toEqual([]);
  });
});
